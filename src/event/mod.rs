//! Building function events: `apigw` for API-gateway requests (SPEC §1); the OSS event of
//! SPEC §6 joins it with the bridge.

pub mod apigw;
pub mod decode;
pub mod json;
