//! Image content parts (OpenAI's `{"type": "image_url", "image_url": {"url": …}}`): which are
//! accepted and why the others are not.
//!
//! - `data:` URLs (`data:image/png;base64,…`): PNG, JPEG, GIF or WebP whose bytes start with
//!   the declared format's signature, at most [`crate::ServerConfig::max_image_bytes`]
//!   decoded; kept as sent, for the vision model.
//! - `http(s)://` URLs: only with [`crate::ServerConfig::allow_image_urls`] (the server does
//!   not fetch them: the vision model's endpoint does, so an operator must allow it), else a
//!   400 asking for a `data:` URL.
//!
//! Anything else is a 400 naming `messages`.

use base64::Engine as _;

use crate::error::ApiError;

/// Image formats a `data:` URL may carry, with the first bytes of each.
const FORMATS: [(&str, &[u8]); 4] = [
    ("image/png", b"\x89PNG\r\n\x1a\n"),
    ("image/jpeg", b"\xff\xd8\xff"),
    ("image/gif", b"GIF8"),
    ("image/webp", b"RIFF"),
];

/// What the server allows.
#[derive(Debug, Clone, Copy)]
pub struct ImageLimits {
    /// Largest decoded image, bytes.
    pub max_bytes: usize,
    /// Whether `http(s)://` image URLs are passed on.
    pub allow_urls: bool,
}

/// Checks the image URL of part `part` of message `message`.
///
/// # Errors
/// 400 naming `messages`, saying what is wrong (type, encoding, size, scheme).
pub fn check(url: &str, limits: ImageLimits, message: usize) -> Result<(), ApiError> {
    let bad = |why: String| {
        ApiError::invalid(
            format!("messages[{message}]: image_url {why}"),
            Some("messages"),
        )
    };
    if let Some(rest) = url.strip_prefix("data:") {
        let (header, data) = rest
            .split_once(',')
            .ok_or_else(|| bad("is a data: URL without a comma".into()))?;
        let media_type = header
            .strip_suffix(";base64")
            .ok_or_else(|| bad("must be base64 (data:image/png;base64,…)".into()))?;
        let (_, signature) = FORMATS
            .iter()
            .find(|(t, _)| t.eq_ignore_ascii_case(media_type))
            .ok_or_else(|| {
                bad(format!(
                    "has type `{media_type}`; accepted: {}",
                    FORMATS.map(|(t, _)| t).join(", ")
                ))
            })?;
        // Decoded size from the encoded length, checked before decoding.
        let estimate = data.len() / 4 * 3;
        if estimate > limits.max_bytes + 3 {
            return Err(bad(format!(
                "holds about {estimate} bytes, over the limit of {} bytes",
                limits.max_bytes
            )));
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .map_err(|e| bad(format!("is not valid base64: {e}")))?;
        if bytes.len() > limits.max_bytes {
            return Err(bad(format!(
                "holds {} bytes, over the limit of {} bytes",
                bytes.len(),
                limits.max_bytes
            )));
        }
        let webp_ok = *signature != b"RIFF" || bytes.get(8..12) == Some(b"WEBP".as_slice());
        if !bytes.starts_with(signature) || !webp_ok {
            return Err(bad(format!("does not hold a {media_type} image")));
        }
        return Ok(());
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        if !limits.allow_urls {
            return Err(bad(
                "is a web address, which this server does not pass on; send the image inline \
                 as a data: URL (data:image/png;base64,…)"
                    .into(),
            ));
        }
        let host = url
            .split("://")
            .nth(1)
            .and_then(|r| r.split(['/', '?', '#']).next())
            .unwrap_or_default();
        if host.is_empty() || url.chars().any(char::is_whitespace) {
            return Err(bad("is not a valid URL".into()));
        }
        return Ok(());
    }
    Err(bad(
        "must be a data: URL (data:image/png;base64,…) or, where allowed, an http(s) URL".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG_1X1: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";

    #[test]
    fn images_are_checked_by_type_size_and_scheme() {
        let limits = ImageLimits {
            max_bytes: 1000,
            allow_urls: false,
        };
        let png = format!("data:image/png;base64,{PNG_1X1}");
        assert!(check(&png, limits, 0).is_ok());
        for (url, says) in [
            (format!("data:image/jpeg;base64,{PNG_1X1}"), "does not hold"),
            (
                format!("data:image/tiff;base64,{PNG_1X1}"),
                "accepted: image/png",
            ),
            ("data:image/png;base64,!!!".to_owned(), "not valid base64"),
            (format!("data:image/png,{PNG_1X1}"), "must be base64"),
            ("https://example.org/cat.png".to_owned(), "data: URL"),
            ("file:///etc/passwd".to_owned(), "must be a data: URL"),
        ] {
            let e = check(&url, limits, 2).unwrap_err();
            assert_eq!(e.param.as_deref(), Some("messages"));
            let m = e.body().error.message;
            assert!(m.contains(says) && m.contains("messages[2]"), "{url}: {m}");
        }
        let small = ImageLimits {
            max_bytes: 10,
            allow_urls: true,
        };
        let e = check(&png, small, 0).unwrap_err();
        assert!(e.body().error.message.contains("limit of 10 bytes"));
        assert!(check("https://example.org/cat.png", small, 0).is_ok());
        assert!(check("https:///cat.png", small, 0).is_err());
    }
}
