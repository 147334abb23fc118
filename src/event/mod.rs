//! Building function events: `apigw` for API-gateway requests (docs/events.md); the OSS event of
//! docs/oss-bridge.md joins it with the bridge.

pub mod apigw;
pub mod decode;
pub mod json;
