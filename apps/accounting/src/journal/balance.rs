//! Filling in an elided amount and checking that a transaction balances per commodity.

use super::*;

/// A posting with its amount known: the elided amount filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Balanced {
    /// The 1-based line of the posting.
    pub line: usize,
    /// The full account name.
    pub account: String,
    /// The amount, written or inferred.
    pub amount: Amount,
    /// The posting's comment, as read.
    pub comment: Option<String>,
}

/// `EUR 1.00` for error messages: commodity first, so that it reads like the sentence it is in.
pub(super) fn describe(commodity: &str, quantity: Quantity) -> String {
    if commodity.is_empty() {
        quantity.to_string()
    } else {
        format!("{commodity} {quantity}")
    }
}

/// Fills the elided amount and checks the transaction balances per commodity.
///
/// At most one posting may omit its amount. It receives the negation of each commodity's
/// sum; when several commodities are unbalanced it becomes one [`Balanced`] per commodity
/// (same line and account), in the order the commodities first appear, as hledger does. When
/// every commodity already balances, it receives a zero of the first commodity.
///
/// Transactions with fewer than two postings are refused: hledger accepts a lone zero
/// posting, but a one-sided entry in an ERP ledger is almost always a mistake.
pub fn balance(tx: &Transaction) -> Result<Vec<Balanced>, JournalError> {
    if tx.postings.len() < 2 {
        return Err(JournalError::at(
            tx.line,
            format!(
                "a transaction needs at least two postings, this one has {}",
                tx.postings.len()
            ),
        ));
    }
    let mut elided = None;
    // Few commodities per transaction: a vector in first-seen order beats a map here.
    let mut sums: Vec<(&str, Quantity)> = Vec::new();
    for (index, posting) in tx.postings.iter().enumerate() {
        let Some(amount) = &posting.amount else {
            if elided.is_some() {
                return Err(JournalError::at(
                    posting.line,
                    "only one posting of a transaction may omit its amount",
                ));
            }
            elided = Some(index);
            continue;
        };
        let overflow = || {
            JournalError::at(
                posting.line,
                format!("the sum of `{}` overflows", amount.commodity),
            )
        };
        match sums
            .iter_mut()
            .find(|(commodity, _)| *commodity == amount.commodity)
        {
            Some((_, sum)) => *sum = sum.add(amount.quantity).ok_or_else(overflow)?,
            None => {
                // Adding to zero also refuses the one mantissa that cannot be negated.
                let sum = Quantity::ZERO.add(amount.quantity).ok_or_else(overflow)?;
                sums.push((&amount.commodity, sum));
            }
        }
    }
    let unbalanced: Vec<(&str, Quantity)> =
        sums.iter().copied().filter(|(_, q)| !q.is_zero()).collect();
    let balanced = |posting: &Posting, amount: Amount| Balanced {
        line: posting.line,
        account: posting.account.clone(),
        amount,
        comment: posting.comment.clone(),
    };
    let mut result = Vec::with_capacity(tx.postings.len() + unbalanced.len());
    for posting in &tx.postings {
        match &posting.amount {
            Some(amount) => result.push(balanced(posting, amount.clone())),
            None if unbalanced.is_empty() => {
                let (commodity, sum) = sums.first().copied().unwrap_or(("", Quantity::ZERO));
                let zero = Quantity {
                    mantissa: 0,
                    scale: sum.scale,
                };
                result.push(balanced(posting, Amount::new(commodity, zero)));
            }
            None => {
                for (commodity, sum) in &unbalanced {
                    result.push(balanced(posting, Amount::new(*commodity, sum.neg())));
                }
            }
        }
    }
    if elided.is_none() && !unbalanced.is_empty() {
        let left: Vec<String> = unbalanced.iter().map(|(c, q)| describe(c, *q)).collect();
        return Err(JournalError::at(
            tx.line,
            format!(
                "transaction does not balance: {} left over",
                left.join(", ")
            ),
        ));
    }
    Ok(result)
}
