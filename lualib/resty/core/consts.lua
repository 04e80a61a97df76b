-- resty.core.consts: the constants of the global `ngx` table (status codes,
-- HTTP methods and statuses, log levels), with lua-nginx-module's values.
-- ngx.null is set by the core before this runs (it must be a light userdata).

local ngx = ngx

-- Core status codes.
ngx.OK = 0
ngx.ERROR = -1
ngx.AGAIN = -2
ngx.DONE = -4
ngx.DECLINED = -5

-- HTTP methods (nginx's bit flags).
ngx.HTTP_GET = 0x0002
ngx.HTTP_HEAD = 0x0004
ngx.HTTP_POST = 0x0008
ngx.HTTP_PUT = 0x0010
ngx.HTTP_DELETE = 0x0020
ngx.HTTP_MKCOL = 0x0040
ngx.HTTP_COPY = 0x0080
ngx.HTTP_MOVE = 0x0100
ngx.HTTP_OPTIONS = 0x0200
ngx.HTTP_PROPFIND = 0x0400
ngx.HTTP_PROPPATCH = 0x0800
ngx.HTTP_LOCK = 0x1000
ngx.HTTP_UNLOCK = 0x2000
ngx.HTTP_PATCH = 0x4000
ngx.HTTP_TRACE = 0x8000

-- HTTP statuses.
ngx.HTTP_CONTINUE = 100
ngx.HTTP_SWITCHING_PROTOCOLS = 101
ngx.HTTP_OK = 200
ngx.HTTP_CREATED = 201
ngx.HTTP_ACCEPTED = 202
ngx.HTTP_NO_CONTENT = 204
ngx.HTTP_PARTIAL_CONTENT = 206
ngx.HTTP_SPECIAL_RESPONSE = 300
ngx.HTTP_MOVED_PERMANENTLY = 301
ngx.HTTP_MOVED_TEMPORARILY = 302
ngx.HTTP_FOUND = 302
ngx.HTTP_SEE_OTHER = 303
ngx.HTTP_NOT_MODIFIED = 304
ngx.HTTP_TEMPORARY_REDIRECT = 307
ngx.HTTP_PERMANENT_REDIRECT = 308
ngx.HTTP_BAD_REQUEST = 400
ngx.HTTP_UNAUTHORIZED = 401
ngx.HTTP_PAYMENT_REQUIRED = 402
ngx.HTTP_FORBIDDEN = 403
ngx.HTTP_NOT_FOUND = 404
ngx.HTTP_NOT_ALLOWED = 405
ngx.HTTP_NOT_ACCEPTABLE = 406
ngx.HTTP_REQUEST_TIMEOUT = 408
ngx.HTTP_CONFLICT = 409
ngx.HTTP_GONE = 410
ngx.HTTP_UPGRADE_REQUIRED = 426
ngx.HTTP_TOO_MANY_REQUESTS = 429
ngx.HTTP_CLOSE = 444
ngx.HTTP_ILLEGAL = 451
ngx.HTTP_INTERNAL_SERVER_ERROR = 500
ngx.HTTP_METHOD_NOT_IMPLEMENTED = 501
ngx.HTTP_NOT_IMPLEMENTED = 501
ngx.HTTP_BAD_GATEWAY = 502
ngx.HTTP_SERVICE_UNAVAILABLE = 503
ngx.HTTP_GATEWAY_TIMEOUT = 504
ngx.HTTP_VERSION_NOT_SUPPORTED = 505
ngx.HTTP_INSUFFICIENT_STORAGE = 507

-- Error-log levels (nginx's numbers; lower is more severe).
ngx.STDERR = 0
ngx.EMERG = 1
ngx.ALERT = 2
ngx.CRIT = 3
ngx.ERR = 4
ngx.WARN = 5
ngx.NOTICE = 6
ngx.INFO = 7
ngx.DEBUG = 8

return ngx
