//! An immutable view of everything a request needs — config, route table, function clients —
//! built off the hot path and swapped whole (`ArcSwap`) so that a reload is one store. A request
//! holds the snapshot it started with until it ends.

use crate::config::Config;
use crate::event::apigw::Template;
use crate::invoke::FunctionClient;
use crate::routing::RouteTable;
use crate::supervisor::InstanceState;
use std::sync::Arc;

pub struct Snapshot {
    pub config: Config,
    pub table: RouteTable,
    pub functions: Vec<FunctionClient>,
    /// Each API's event template, by the API's index in `config.apis`.
    pub templates: Vec<Template>,
    /// The supervised instances the functions' endpoints lead to.
    pub instances: Vec<Arc<InstanceState>>,
    /// 1 for the config the gateway started with, one more for each reload.
    pub generation: u64,
}

impl Snapshot {
    pub fn new(
        config: Config,
        instances: Vec<Arc<InstanceState>>,
        generation: u64,
    ) -> Result<Snapshot, String> {
        let table = RouteTable::build(&config.routes).map_err(|c| {
            c.iter()
                .map(|c| c.message.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        })?;
        let functions = config.functions.iter().map(FunctionClient::new).collect();
        let templates = config
            .apis
            .iter()
            .map(|api| Template::new(api, &config.gateway))
            .collect();
        Ok(Snapshot {
            config,
            table,
            functions,
            templates,
            instances,
            generation,
        })
    }
}
