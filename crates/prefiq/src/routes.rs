//! Route descriptions: what the HTTP layer assembled, as data the kernel can show.

use serde::Serialize;

use crate::error::KernelError;
use crate::services::Services;

/// One route as declared by a module.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct RouteInfo {
    /// The path pattern, such as `/api/v1/modules`.
    pub path: String,
    /// The method, upper case.
    pub method: String,
    /// The module that declared it (`prefiq` for the built-in routes).
    pub module: String,
}

/// Builds the router in the boot's routes step. The HTTP layer binds one as
/// `dyn RouteAssembler`; without it the routes step has nothing to do.
pub trait RouteAssembler: Send + Sync {
    /// Collects every module's routes, refuses conflicts, and returns what was assembled.
    fn assemble(&self, services: &Services) -> Result<Vec<RouteInfo>, KernelError>;
}
