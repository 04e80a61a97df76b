        -- halo resty: ngx.say, ngx.print and print write to stdout, as
        -- resty-cli's do (nil, booleans, ngx.null and nested tables shown
        -- the way its output function shows them); ngx.exit is os.exit.
        local stdout = io.stdout
        local null = ngx.null
        local concat, maxn, tostring, type = table.concat, table.maxn, tostring, type

        local function flatten(args, out)
            for i = 1, maxn(args) do
                local v = args[i]
                if v == nil then
                    out[#out + 1] = "nil"
                elseif v == null then
                    out[#out + 1] = "null"
                elseif type(v) == "table" then
                    flatten(v, out)
                else
                    out[#out + 1] = tostring(v)
                end
            end
            return out
        end

        local function output(...)
            return stdout:write(concat(flatten({ ... }, {})))
        end

        ngx.print = output
        ngx.say = function(...)
            local ok, err = output(...)
            if not ok then
                return ok, err
            end
            return output("\n")
        end
        print = ngx.say
        ngx.flush = function() return stdout:flush() end
        -- stdout stays open: the code may print after it.
        ngx.eof = function() return true end
        ngx.exit = os.exit
