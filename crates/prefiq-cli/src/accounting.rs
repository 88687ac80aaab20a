//! `prefiq accounting …`: plain-text accounting import and export, a generator of test
//! journals, and the trial balance and per-currency balances on the terminal.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use ::accounting::books::Books;
use ::accounting::import::{ImportError, ImportOptions, import_file};
use ::accounting::money::format_minor;
use clap::Subcommand;
use prefiq::{App, BootMode, Context};
use prefiq_data::entity::repo::TenantScope;

use crate::{Cli, CliError, boot, logging, print_out};

/// `prefiq accounting ...`.
#[derive(Debug, Subcommand)]
pub enum AccountingCommand {
    /// Import a journal (the format hledger and ledger-cli read) into a company; nothing
    /// is written if any transaction is invalid, unless --skip-invalid.
    Import {
        /// The journal file.
        file: PathBuf,
        /// The company: id, name or abbreviation.
        #[arg(long)]
        company: String,
        /// The tenant.
        #[arg(long, default_value = "default")]
        tenant: String,
        /// Create the company with this base currency if it does not exist.
        #[arg(long)]
        create_currency: Option<String>,
        /// Skip invalid transactions (each is still reported).
        #[arg(long)]
        skip_invalid: bool,
    },
    /// Write a company's submitted entries as a journal.
    Export {
        /// The company.
        #[arg(long)]
        company: String,
        /// The tenant.
        #[arg(long, default_value = "default")]
        tenant: String,
        /// The file to write (default: standard output).
        #[arg(long)]
        to: Option<PathBuf>,
    },
    /// Write a generated journal (for tests and benchmarks).
    Generate {
        /// How many postings.
        #[arg(long)]
        postings: usize,
        /// The seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Commodities, comma-separated; prices are quoted in the first.
        #[arg(long, default_value = "USD,EUR,JPY")]
        commodities: String,
        /// The file to write.
        #[arg(long)]
        to: PathBuf,
    },
    /// Print the trial balance (company currency) as of a date.
    TrialBalance {
        /// The company.
        #[arg(long)]
        company: String,
        /// The tenant.
        #[arg(long, default_value = "default")]
        tenant: String,
        /// The last date (default: today).
        #[arg(long)]
        to: Option<String>,
        /// The first date (default: the start of its fiscal year).
        #[arg(long)]
        from: Option<String>,
        /// Print CSV.
        #[arg(long)]
        csv: bool,
    },
    /// Print every account's balance in each currency it holds, one line per account and
    /// currency, as `hledger balance` reports them.
    Balance {
        /// The company.
        #[arg(long)]
        company: String,
        /// The tenant.
        #[arg(long, default_value = "default")]
        tenant: String,
    },
}

fn message(text: impl Into<String>) -> CliError {
    CliError::Message(text.into())
}

fn scope(tenant: &str) -> Result<TenantScope, CliError> {
    TenantScope::new(&Context::system("en").with_tenant(tenant))
        .map_err(|e| message(format!("tenant `{tenant}`: {e}")))
}

/// The import's progress bar on stderr (indicatif): drawn only when stderr is a terminal,
/// at most a few times a second, and cleared when the import ends.
fn progress_bar(total: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(total),
        indicatif::ProgressDrawTarget::stderr_with_hz(5),
    );
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "[{bar:25}] {percent:>3}% {bytes}/{total_bytes} {elapsed}",
    ) {
        bar.set_style(style.progress_chars("#>-"));
    }
    bar
}

/// Runs an accounting command.
pub async fn command(
    command: &AccountingCommand,
    app: App,
    cli: &Cli,
    logs: &logging::LogControl,
) -> Result<(), CliError> {
    if let AccountingCommand::Generate {
        postings,
        seed,
        commodities,
        to,
    } = command
    {
        let file =
            std::fs::File::create(to).map_err(|e| message(format!("{}: {e}", to.display())))?;
        let mut out = std::io::BufWriter::with_capacity(1 << 16, file);
        let options = ::accounting::journal::Generate {
            postings: *postings,
            seed: *seed,
            commodities: commodities
                .split(',')
                .map(|c| c.trim().to_owned())
                .filter(|c| !c.is_empty())
                .collect(),
            elide: true,
            start_year: 2020,
        };
        let summary = ::accounting::journal::generate(&mut out, &options)
            .and_then(|s| std::io::Write::flush(&mut out).map(|()| s))
            .map_err(|e| message(format!("{}: {e}", to.display())))?;
        print_out(&format!(
            "{} transactions, {} postings written to {}\n",
            summary.transactions,
            summary.postings,
            to.display()
        ));
        return Ok(());
    }
    let booted = boot(app, cli, BootMode::Command, true, vec![], logs, true).await?;
    let result = async {
        let books = booted.resolver("prefiq accounting").get::<Books>()?;
        match command {
            AccountingCommand::Import { file, company, tenant, create_currency, skip_invalid } => {
                let scope = scope(tenant)?;
                // The import reads the file twice (check, then write): progress counts both passes.
                let total = std::fs::metadata(file).map(|m| m.len().saturating_mul(2)).unwrap_or(0);
                let progress = progress_bar(total);
                let started = Instant::now();
                let options = ImportOptions { company: company.clone(), create_currency: create_currency.clone(), skip_invalid: *skip_invalid };
                let outcome = import_file(&books, &scope, file, &options, &|done| progress.set_position(done.min(total))).await;
                progress.finish_and_clear();
                match outcome {
                    Ok(report) => {
                        let seconds = started.elapsed().as_secs_f64();
                        let mut out = String::new();
                        for line in &report.invalid {
                            let _ = writeln!(out, "skipped: {}: {line}", file.display());
                        }
                        let _ = writeln!(
                            out,
                            "imported {} transactions, {} postings in {seconds:.2} s ({:.0} postings/s){}",
                            report.transactions,
                            report.postings,
                            report.postings as f64 / seconds.max(1e-9),
                            if report.invalid.is_empty() { String::new() } else { format!("; {} invalid skipped", report.invalid.len() as u64 + report.more_invalid) }
                        );
                        print_out(&out);
                        Ok(())
                    }
                    Err(ImportError::Invalid(errors)) => {
                        let mut out = String::new();
                        for e in &errors {
                            let _ = writeln!(out, "{}:{}: {}", file.display(), e.line, e.message);
                        }
                        eprint!("{out}");
                        Err(message(format!("{}: {} invalid transaction(s); nothing was written (use --skip-invalid to import the rest)", file.display(), errors.len())))
                    }
                    Err(e) => Err(message(e.to_string())),
                }
            }
            AccountingCommand::Export { company, tenant, to } => {
                let scope = scope(tenant)?;
                let written = match to {
                    Some(path) => {
                        let file = std::fs::File::create(path).map_err(|e| message(format!("{}: {e}", path.display())))?;
                        let mut out = std::io::BufWriter::new(file);
                        let n = ::accounting::import::export(&books, &scope, company, &mut out).await.map_err(|e| message(e.to_string()))?;
                        std::io::Write::flush(&mut out).map_err(|e| message(e.to_string()))?;
                        n
                    }
                    None => {
                        let mut out = std::io::stdout();
                        ::accounting::import::export(&books, &scope, company, &mut out).await.map_err(|e| message(e.to_string()))?
                    }
                };
                if to.is_some() {
                    print_out(&format!("exported {written} entries\n"));
                }
                Ok(())
            }
            AccountingCommand::TrialBalance { company, tenant, to, from, csv } => {
                let scope = scope(tenant)?;
                let to = to.clone().unwrap_or_else(::accounting::reports::today);
                let started = Instant::now();
                let report = ::accounting::reports::trial_balance(&books, &scope, company, from.as_deref(), &to)
                    .await
                    .map_err(|e| message(e.to_string()))?;
                let elapsed = started.elapsed();
                if *csv {
                    print_out(&::accounting::reports::to_csv(&report, &["account_path", "opening_debit", "opening_credit", "debit", "credit", "closing_debit", "closing_credit"]));
                } else {
                    let mut out = String::new();
                    for row in report["rows"].as_array().into_iter().flatten() {
                        let _ = writeln!(
                            out,
                            "{:<48} {:>16} {:>16} {:>16} {:>16}",
                            format!("{}{}", "  ".repeat(row["depth"].as_u64().unwrap_or(0) as usize), row["account_name"].as_str().unwrap_or("")),
                            row["debit"].as_str().unwrap_or(""),
                            row["credit"].as_str().unwrap_or(""),
                            row["closing_debit"].as_str().unwrap_or(""),
                            row["closing_credit"].as_str().unwrap_or(""),
                        );
                    }
                    let t = &report["totals"];
                    let _ = writeln!(out, "{:<48} {:>16} {:>16} {:>16} {:>16}", "total", t["debit"].as_str().unwrap_or(""), t["credit"].as_str().unwrap_or(""), t["closing_debit"].as_str().unwrap_or(""), t["closing_credit"].as_str().unwrap_or(""));
                    let _ = writeln!(out, "trial balance in {:.1} ms", elapsed.as_secs_f64() * 1e3);
                    print_out(&out);
                }
                Ok(())
            }
            AccountingCommand::Balance { company, tenant } => {
                let scope = scope(tenant)?;
                let balances = ::accounting::reports::balances_by_currency(&books, &scope, company)
                    .await
                    .map_err(|e| message(e.to_string()))?;
                let mut out = String::new();
                for (path, currencies) in balances {
                    for (currency, minor) in currencies {
                        let _ = writeln!(out, "{path}\t{} {currency}", format_minor(minor, &currency));
                    }
                }
                print_out(&out);
                Ok(())
            }
            AccountingCommand::Generate { .. } => Ok(()),
        }
    }
    .await;
    booted.shutdown().await?;
    result
}
