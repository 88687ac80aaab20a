//! The typed service registry: singletons, lazy singletons, factories and contributions.
//!
//! Services are keyed by type. A trait object can be a service: bind `Arc<dyn Trait>` with
//! `singleton::<dyn Trait>(..)` and resolve it with `get::<dyn Trait>()`.

use std::any::{Any, TypeId, type_name};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use crate::error::KernelError;

type Factory<T> = Arc<dyn Fn(&Resolver<'_>) -> Result<Arc<T>, KernelError> + Send + Sync>;

enum Binding {
    /// Holds an `Arc<T>`.
    Singleton(Box<dyn Any + Send + Sync>),
    /// Holds a `Factory<T>` and the `OnceLock<Arc<T>>` it fills on first use.
    Lazy(Box<dyn Any + Send + Sync>, Box<dyn Any + Send + Sync>),
    /// Holds a `Factory<T>` called on every resolve.
    Factory(Box<dyn Any + Send + Sync>),
}

struct Entry {
    type_name: &'static str,
    bound_by: String,
    binding: Binding,
}

/// The registry of every bound service. Filled during `register`, read-only after.
#[derive(Default)]
pub struct Services {
    entries: HashMap<TypeId, Entry>,
    /// Multi-bindings: each holds a `Vec<Arc<T>>`, in registration order.
    contributions: HashMap<TypeId, Box<dyn Any + Send + Sync>>,
}

impl Services {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    fn insert(
        &mut self,
        key: TypeId,
        type_name: &'static str,
        bound_by: &str,
        binding: Binding,
    ) -> Result<(), KernelError> {
        if self.entries.contains_key(&key) {
            return Err(KernelError::DuplicateService {
                service: type_name,
                bound_by: bound_by.to_owned(),
            });
        }
        self.entries.insert(
            key,
            Entry {
                type_name,
                bound_by: bound_by.to_owned(),
                binding,
            },
        );
        Ok(())
    }

    /// Whether a service of type `T` is bound.
    pub fn contains<T: ?Sized + 'static>(&self) -> bool {
        self.entries.contains_key(&TypeId::of::<T>())
    }

    /// Resolves `T` on behalf of `requested_by`, naming both in the error if it is missing.
    pub fn get<T: ?Sized + Send + Sync + 'static>(
        &self,
        requested_by: &str,
    ) -> Result<Arc<T>, KernelError> {
        Resolver {
            services: self,
            requested_by,
        }
        .get::<T>()
    }

    /// Every contribution of type `T`, in registration order (empty if none).
    pub fn all<T: ?Sized + Send + Sync + 'static>(&self) -> Vec<Arc<T>> {
        self.contributions
            .get(&TypeId::of::<T>())
            .and_then(|b| b.downcast_ref::<Vec<Arc<T>>>())
            .cloned()
            .unwrap_or_default()
    }

    /// Who bound each service, sorted by type name: for `boot --dry-run` and diagnostics.
    pub fn bindings(&self) -> Vec<(&'static str, &str)> {
        let mut out: Vec<_> = self
            .entries
            .values()
            .map(|e| (e.type_name, e.bound_by.as_str()))
            .collect();
        out.sort_unstable();
        out
    }
}

/// A view of the registry that knows who is asking, so a missing service names its requester.
#[derive(Clone, Copy)]
pub struct Resolver<'a> {
    services: &'a Services,
    requested_by: &'a str,
}

impl<'a> Resolver<'a> {
    /// A resolver acting for `requested_by`.
    pub fn new(services: &'a Services, requested_by: &'a str) -> Self {
        Resolver {
            services,
            requested_by,
        }
    }

    /// Who this resolver acts for.
    pub fn requested_by(&self) -> &str {
        self.requested_by
    }

    /// The registry behind this resolver.
    pub fn services(&self) -> &'a Services {
        self.services
    }

    /// Resolves `T`, or fails naming `T` and the requester.
    pub fn get<T: ?Sized + Send + Sync + 'static>(&self) -> Result<Arc<T>, KernelError> {
        let missing = || KernelError::MissingService {
            service: type_name::<T>(),
            requested_by: self.requested_by.to_owned(),
        };
        let entry = self
            .services
            .entries
            .get(&TypeId::of::<T>())
            .ok_or_else(missing)?;
        match &entry.binding {
            Binding::Singleton(value) => {
                value.downcast_ref::<Arc<T>>().cloned().ok_or_else(missing)
            }
            Binding::Factory(factory) => {
                let factory = factory.downcast_ref::<Factory<T>>().ok_or_else(missing)?;
                factory(self)
            }
            Binding::Lazy(factory, cell) => {
                let cell = cell
                    .downcast_ref::<OnceLock<Arc<T>>>()
                    .ok_or_else(missing)?;
                if let Some(value) = cell.get() {
                    return Ok(value.clone());
                }
                let factory = factory.downcast_ref::<Factory<T>>().ok_or_else(missing)?;
                let value = factory(self)?;
                // Two racing first uses may both build; the first stored value wins for both.
                Ok(cell.get_or_init(|| value).clone())
            }
        }
    }

    /// Resolves `T` if bound.
    pub fn try_get<T: ?Sized + Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        self.services
            .contains::<T>()
            .then(|| self.get::<T>().ok())
            .flatten()
    }
}

/// The registry as a provider sees it during `register`: it can bind, and every binding
/// records the provider's name.
pub struct Registrar<'a> {
    services: &'a mut Services,
    provider: &'a str,
}

impl<'a> Registrar<'a> {
    /// A registrar binding on behalf of `provider`.
    pub fn new(services: &'a mut Services, provider: &'a str) -> Self {
        Registrar { services, provider }
    }

    /// Binds one shared instance of `T`.
    pub fn singleton<T: ?Sized + Send + Sync + 'static>(
        &mut self,
        value: Arc<T>,
    ) -> Result<(), KernelError> {
        self.services.insert(
            TypeId::of::<T>(),
            type_name::<T>(),
            self.provider,
            Binding::Singleton(Box::new(value)),
        )
    }

    /// Binds `T` to a factory called once, on first resolve; later resolves share its value.
    pub fn lazy_singleton<T, F>(&mut self, factory: F) -> Result<(), KernelError>
    where
        T: ?Sized + Send + Sync + 'static,
        F: Fn(&Resolver<'_>) -> Result<Arc<T>, KernelError> + Send + Sync + 'static,
    {
        let factory: Factory<T> = Arc::new(factory);
        self.services.insert(
            TypeId::of::<T>(),
            type_name::<T>(),
            self.provider,
            Binding::Lazy(Box::new(factory), Box::new(OnceLock::<Arc<T>>::new())),
        )
    }

    /// Binds `T` to a factory called on every resolve.
    pub fn factory<T, F>(&mut self, factory: F) -> Result<(), KernelError>
    where
        T: ?Sized + Send + Sync + 'static,
        F: Fn(&Resolver<'_>) -> Result<Arc<T>, KernelError> + Send + Sync + 'static,
    {
        let factory: Factory<T> = Arc::new(factory);
        self.services.insert(
            TypeId::of::<T>(),
            type_name::<T>(),
            self.provider,
            Binding::Factory(Box::new(factory)),
        )
    }

    /// Adds one contribution to the multi-binding of `T` (routes, readiness checks, ...).
    pub fn contribute<T: ?Sized + Send + Sync + 'static>(&mut self, value: Arc<T>) {
        let list = self
            .services
            .contributions
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Box::new(Vec::<Arc<T>>::new()));
        if let Some(list) = list.downcast_mut::<Vec<Arc<T>>>() {
            list.push(value);
        }
    }

    /// The name bindings are recorded under.
    pub fn provider(&self) -> &str {
        self.provider
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    trait Greeter: Send + Sync {
        fn greet(&self) -> String;
    }
    struct English;
    impl Greeter for English {
        fn greet(&self) -> String {
            "hello".into()
        }
    }

    #[test]
    fn singleton_trait_object_resolves_to_the_same_instance() {
        let mut services = Services::new();
        Registrar::new(&mut services, "test")
            .singleton::<dyn Greeter>(Arc::new(English))
            .unwrap();
        let a = services.get::<dyn Greeter>("a").unwrap();
        let b = services.get::<dyn Greeter>("b").unwrap();
        assert_eq!(a.greet(), "hello");
        assert!(Arc::ptr_eq(&a, &b));
    }

    #[test]
    fn factory_builds_each_time_and_lazy_singleton_once() {
        static BUILT: AtomicUsize = AtomicUsize::new(0);
        let mut services = Services::new();
        let mut r = Registrar::new(&mut services, "test");
        r.factory::<String, _>(|_| {
            BUILT.fetch_add(1, Ordering::SeqCst);
            Ok(Arc::new("x".to_owned()))
        })
        .unwrap();
        r.lazy_singleton::<u64, _>(|_| Ok(Arc::new(BUILT.fetch_add(100, Ordering::SeqCst) as u64)))
            .unwrap();
        let _ = services.get::<String>("t").unwrap();
        let _ = services.get::<String>("t").unwrap();
        assert_eq!(BUILT.load(Ordering::SeqCst), 2);
        let first = services.get::<u64>("t").unwrap();
        let second = services.get::<u64>("t").unwrap();
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!(BUILT.load(Ordering::SeqCst), 102);
    }

    #[test]
    fn missing_service_names_service_and_requester() {
        let services = Services::new();
        let err = services
            .get::<dyn Greeter>("provider `cortex`")
            .err()
            .unwrap();
        assert_eq!(
            err.to_string(),
            "service `dyn prefiq::services::tests::Greeter` is not bound (requested by provider `cortex`)"
        );
    }

    #[test]
    fn a_factory_that_needs_a_missing_service_names_the_original_requester() {
        let mut services = Services::new();
        Registrar::new(&mut services, "db")
            .factory::<String, _>(|r| r.get::<u32>().map(|n| Arc::new(n.to_string())))
            .unwrap();
        let err = services.get::<String>("hook `on_boot`").err().unwrap();
        assert_eq!(
            err.to_string(),
            "service `u32` is not bound (requested by hook `on_boot`)"
        );
    }

    #[test]
    fn binding_twice_is_an_error() {
        let mut services = Services::new();
        Registrar::new(&mut services, "one")
            .singleton(Arc::new(1u8))
            .unwrap();
        let err = Registrar::new(&mut services, "two")
            .singleton(Arc::new(2u8))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "service `u8` is bound twice (second binding by two)"
        );
    }

    #[test]
    fn contributions_keep_registration_order() {
        let mut services = Services::new();
        let mut r = Registrar::new(&mut services, "t");
        r.contribute::<dyn Greeter>(Arc::new(English));
        r.contribute::<str>(Arc::from("a"));
        r.contribute::<str>(Arc::from("b"));
        let all: Vec<String> = services
            .all::<str>()
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(all, ["a", "b"]);
        assert_eq!(services.all::<dyn Greeter>().len(), 1);
        assert!(services.all::<u8>().is_empty());
    }
}
