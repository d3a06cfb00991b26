//! HTTP replies: the parser sees every byte a server (or anyone on the path)
//! sends. Fed whole and cut in two, with and without the close, the answers
//! must agree: complete before the close means the same reply at the close,
//! and the close never leaves it waiting for more.
#![no_main]
use libfuzzer_sys::fuzz_target;
use registry_client::http::parse_reply;

fuzz_target!(|data: &[u8]| {
    let closed = parse_reply(data, true);
    assert!(!matches!(closed, Ok(None)));
    match parse_reply(data, false) {
        Ok(Some(r)) => assert_eq!(closed.ok(), Some(Some(r))),
        Ok(None) => {}
        Err(_) => assert!(closed.is_err()),
    }
    // A complete prefix is the whole reply: more bytes never change it.
    let cut = data.len() / 2;
    if let Ok(Some(r)) = parse_reply(&data[..cut], false) {
        assert_eq!(parse_reply(data, false).ok(), Some(Some(r)));
    }
});
