//! The audit log as a service: bound at register, run while serving.

use super::*;

/// Binds [`AuditLog`]; when serving, runs its checkpointer, and at shutdown signs a last
/// checkpoint of every log that grew. Register it after `DatabaseProvider`, so that it
/// shuts down first.
#[derive(Default)]
pub struct AuditProvider {
    task: std::sync::Mutex<
        Option<(
            tokio::sync::oneshot::Sender<()>,
            tokio::task::JoinHandle<()>,
        )>,
    >,
}

#[prefiq::async_trait]
impl prefiq::ServiceProvider for AuditProvider {
    fn name(&self) -> &'static str {
        "prefiq_data::AuditProvider"
    }

    fn config_section(&self) -> Option<&'static str> {
        Some("audit")
    }

    fn register(&self, cx: &mut prefiq::RegisterContext<'_>) -> Result<(), prefiq::KernelError> {
        let config: AuditConfig = cx
            .config
            .section("audit")
            .map_err(|e| prefiq::KernelError::service(prefiq::ErrorKind::Invalid, e))?
            .unwrap_or_default();
        // A retired key that does not parse stops boot, naming it.
        super::retired_keys(&config)
            .map_err(|e| prefiq::KernelError::service(prefiq::ErrorKind::Invalid, e))?;
        cx.services.lazy_singleton::<AuditLog, _>(move |r| {
            let settings = r.get::<prefiq::config::Config>()?;
            let key = load_signing_key(&settings.root, &settings.env, &config)
                .map_err(|e| prefiq::KernelError::service(prefiq::ErrorKind::Invalid, e))?;
            Ok(Arc::new(AuditLog::new(
                r.get::<crate::entity::repo::Repository>()?,
                key,
                config.clone(),
            )))
        })?;
        Ok(())
    }

    async fn boot(&self, cx: &prefiq::BootContext<'_>) -> Result<(), prefiq::KernelError> {
        if cx.mode == prefiq::BootMode::DryRun {
            return Ok(());
        }
        // Resolving reads the key: a production start without one stops here.
        let log = cx.services.get::<AuditLog>()?;
        if cx.mode == prefiq::BootMode::Serve {
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let task = tokio::spawn(log.run(async move {
                let _ = stopped.await;
            }));
            *self
                .task
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((stop, task));
        }
        Ok(())
    }

    async fn shutdown(&self, _cx: &prefiq::BootContext<'_>) -> Result<(), prefiq::KernelError> {
        let task = self
            .task
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some((stop, task)) = task {
            let _ = stop.send(());
            if let Err(e) = task.await {
                tracing::error!(target: "prefiq::audit", error = %e, "the audit checkpointer failed");
            }
        }
        Ok(())
    }
}
