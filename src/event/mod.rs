//! Building function events: `apigw` for API-gateway requests (docs/events.md) in JD Cloud's
//! shape, `aws` in AWS API Gateway's (`format: aws-v1 | aws-v2`), `aliyun` in Alibaba Cloud
//! Function Compute's (`format: aliyun`); the OSS event of
//! docs/oss-bridge.md is built with the bridge.

pub mod aliyun;
pub mod apigw;
pub mod aws;
pub mod decode;
pub mod json;
