//! The default MIME types: nginx's `conf/mime.types` as shipped, used when
//! `types {}` is not configured.

use std::collections::HashMap;

/// nginx's mime.types, in its order: (type, extensions).
pub static MIME_TYPES: &[(&str, &[&str])] = &[
    ("text/html", &["html", "htm", "shtml"]),
    ("text/css", &["css"]),
    ("text/xml", &["xml"]),
    ("image/gif", &["gif"]),
    ("image/jpeg", &["jpeg", "jpg"]),
    ("application/javascript", &["js"]),
    ("application/atom+xml", &["atom"]),
    ("application/rss+xml", &["rss"]),
    ("text/mathml", &["mml"]),
    ("text/plain", &["txt"]),
    ("text/vnd.sun.j2me.app-descriptor", &["jad"]),
    ("text/vnd.wap.wml", &["wml"]),
    ("text/x-component", &["htc"]),
    ("image/avif", &["avif"]),
    ("image/png", &["png"]),
    ("image/svg+xml", &["svg", "svgz"]),
    ("image/tiff", &["tif", "tiff"]),
    ("image/vnd.wap.wbmp", &["wbmp"]),
    ("image/webp", &["webp"]),
    ("image/x-icon", &["ico"]),
    ("image/x-jng", &["jng"]),
    ("image/x-ms-bmp", &["bmp"]),
    ("font/woff", &["woff"]),
    ("font/woff2", &["woff2"]),
    ("application/java-archive", &["jar", "war", "ear"]),
    ("application/json", &["json"]),
    ("application/mac-binhex40", &["hqx"]),
    ("application/msword", &["doc"]),
    ("application/pdf", &["pdf"]),
    ("application/postscript", &["ps", "eps", "ai"]),
    ("application/rtf", &["rtf"]),
    ("application/vnd.apple.mpegurl", &["m3u8"]),
    ("application/vnd.google-earth.kml+xml", &["kml"]),
    ("application/vnd.google-earth.kmz", &["kmz"]),
    ("application/vnd.ms-excel", &["xls"]),
    ("application/vnd.ms-fontobject", &["eot"]),
    ("application/vnd.ms-powerpoint", &["ppt"]),
    ("application/vnd.oasis.opendocument.graphics", &["odg"]),
    ("application/vnd.oasis.opendocument.presentation", &["odp"]),
    ("application/vnd.oasis.opendocument.spreadsheet", &["ods"]),
    ("application/vnd.oasis.opendocument.text", &["odt"]),
    (
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        &["pptx"],
    ),
    (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        &["xlsx"],
    ),
    (
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        &["docx"],
    ),
    ("application/vnd.wap.wmlc", &["wmlc"]),
    ("application/wasm", &["wasm"]),
    ("application/x-7z-compressed", &["7z"]),
    ("application/x-cocoa", &["cco"]),
    ("application/x-java-archive-diff", &["jardiff"]),
    ("application/x-java-jnlp-file", &["jnlp"]),
    ("application/x-makeself", &["run"]),
    ("application/x-perl", &["pl", "pm"]),
    ("application/x-pilot", &["prc", "pdb"]),
    ("application/x-rar-compressed", &["rar"]),
    ("application/x-redhat-package-manager", &["rpm"]),
    ("application/x-sea", &["sea"]),
    ("application/x-shockwave-flash", &["swf"]),
    ("application/x-stuffit", &["sit"]),
    ("application/x-tcl", &["tcl", "tk"]),
    ("application/x-x509-ca-cert", &["der", "pem", "crt"]),
    ("application/x-xpinstall", &["xpi"]),
    ("application/xhtml+xml", &["xhtml"]),
    ("application/xspf+xml", &["xspf"]),
    ("application/zip", &["zip"]),
    ("application/octet-stream", &["bin", "exe", "dll"]),
    ("application/octet-stream", &["deb"]),
    ("application/octet-stream", &["dmg"]),
    ("application/octet-stream", &["iso", "img"]),
    ("application/octet-stream", &["msi", "msp", "msm"]),
    ("audio/midi", &["mid", "midi", "kar"]),
    ("audio/mpeg", &["mp3"]),
    ("audio/ogg", &["ogg"]),
    ("audio/x-m4a", &["m4a"]),
    ("audio/x-realaudio", &["ra"]),
    ("video/3gpp", &["3gpp", "3gp"]),
    ("video/mp2t", &["ts"]),
    ("video/mp4", &["mp4"]),
    ("video/mpeg", &["mpeg", "mpg"]),
    ("video/quicktime", &["mov"]),
    ("video/webm", &["webm"]),
    ("video/x-flv", &["flv"]),
    ("video/x-m4v", &["m4v"]),
    ("video/x-mng", &["mng"]),
    ("video/x-ms-asf", &["asx", "asf"]),
    ("video/x-ms-wmv", &["wmv"]),
    ("video/x-msvideo", &["avi"]),
];

/// extension (lowercase, no dot) -> MIME type.
pub fn default_types() -> HashMap<String, String> {
    let mut map = HashMap::with_capacity(128);
    for (mime, exts) in MIME_TYPES {
        for ext in *exts {
            // As in nginx, a later duplicate would be ignored (there are none).
            map.entry((*ext).to_owned())
                .or_insert_with(|| (*mime).to_owned());
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_types() {
        let t = default_types();
        for (ext, mime) in [
            ("html", "text/html"),
            ("htm", "text/html"),
            ("shtml", "text/html"),
            ("css", "text/css"),
            ("js", "application/javascript"),
            ("json", "application/json"),
            ("txt", "text/plain"),
            ("png", "image/png"),
            ("jpg", "image/jpeg"),
            ("svg", "image/svg+xml"),
            ("woff2", "font/woff2"),
            ("wasm", "application/wasm"),
            (
                "docx",
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            ),
            ("deb", "application/octet-stream"),
            ("msm", "application/octet-stream"),
            ("mp4", "video/mp4"),
            ("avi", "video/x-msvideo"),
        ] {
            assert_eq!(t.get(ext).map(String::as_str), Some(mime), "{ext}");
        }
        assert!(!t.contains_key("mjs"));
        assert!(!t.contains_key("HTML"));
    }

    #[test]
    fn extensions_are_unique_lowercase() {
        let mut seen = std::collections::HashSet::new();
        for (_, exts) in MIME_TYPES {
            for ext in *exts {
                assert!(seen.insert(*ext), "duplicate {ext}");
                assert_eq!(*ext, ext.to_ascii_lowercase());
            }
        }
        assert_eq!(default_types().len(), seen.len());
    }
}
