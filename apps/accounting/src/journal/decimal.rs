//! Exact decimal quantities as the journal writes them.

use std::fmt;

/// The most decimals a [`Quantity`] parsed from text may have.
pub const MAX_SCALE: u8 = 18;

/// An exact decimal quantity: `mantissa / 10^scale`.
///
/// The scale is kept as written, so `1.50` and `1.5` are different values of this type (they
/// compare unequal) even though they denote the same number; [`Quantity::rescale`] compares
/// across scales.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quantity {
    /// The digits of the number, sign included, without the decimal point.
    pub mantissa: i128,
    /// How many of the mantissa's digits are decimals.
    pub scale: u8,
}

/// Ten to the power `exponent`, or `None` if that does not fit an `i128`.
pub(super) fn power_of_ten(exponent: u8) -> Option<i128> {
    10i128.checked_pow(u32::from(exponent))
}

impl Quantity {
    /// Zero, with no decimals.
    pub const ZERO: Quantity = Quantity {
        mantissa: 0,
        scale: 0,
    };

    /// Parses a decimal number such as `1,234.50`, `-3` or `0.005`.
    ///
    /// An optional leading `-` or `+` is allowed, commas may separate groups of three digits
    /// in the integer part, and there may be at most [`MAX_SCALE`] decimals. Surrounding
    /// whitespace is ignored. Returns `None` for anything else, including numbers too large
    /// for an `i128` mantissa.
    pub fn parse(text: &str) -> Option<Quantity> {
        parse_decimal(text.trim(), CommaRule::ThousandsSeparator).ok()
    }

    /// The mantissa this quantity has at `scale` decimals.
    ///
    /// Exact: `None` if digits would be lost (a non-zero decimal would be cut off) or the
    /// result does not fit an `i128`.
    pub fn rescale(self, scale: u8) -> Option<i128> {
        if scale >= self.scale {
            self.mantissa.checked_mul(power_of_ten(scale - self.scale)?)
        } else {
            let divisor = power_of_ten(self.scale - scale)?;
            if self.mantissa % divisor == 0 {
                Some(self.mantissa / divisor)
            } else {
                None
            }
        }
    }

    /// Whether this quantity is zero, whatever its scale.
    pub fn is_zero(&self) -> bool {
        self.mantissa == 0
    }

    /// The same quantity with the opposite sign, at the same scale.
    ///
    /// Saturates for the one mantissa that has no negation (`i128::MIN`), which neither
    /// [`Quantity::parse`] nor [`Quantity::add`] ever produce.
    // Callers use the method form `q.neg()`; the `Neg` operator is implemented as well.
    #[allow(clippy::should_implement_trait)]
    pub fn neg(self) -> Quantity {
        Quantity {
            mantissa: self.mantissa.saturating_neg(),
            scale: self.scale,
        }
    }

    /// The exact sum, at the larger of the two scales; `None` on overflow.
    // A method, not `Add`: the operator could not report overflow.
    #[allow(clippy::should_implement_trait)]
    pub fn add(self, other: Quantity) -> Option<Quantity> {
        let scale = self.scale.max(other.scale);
        let mantissa = self.rescale(scale)?.checked_add(other.rescale(scale)?)?;
        // i128::MIN is refused so that every sum can be negated exactly.
        if mantissa == i128::MIN {
            return None;
        }
        Some(Quantity { mantissa, scale })
    }
}

impl std::ops::Neg for Quantity {
    type Output = Quantity;

    fn neg(self) -> Quantity {
        Quantity::neg(self)
    }
}

impl fmt::Display for Quantity {
    /// Plain digits, `-` for negatives, no thousands separators, every decimal of the scale.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.mantissa.unsigned_abs().to_string();
        let scale = usize::from(self.scale);
        let mut text = String::with_capacity(digits.len() + scale + 3);
        if self.mantissa < 0 {
            text.push('-');
        }
        if scale == 0 {
            text.push_str(&digits);
        } else if digits.len() > scale {
            let (whole, decimals) = digits.split_at(digits.len() - scale);
            text.push_str(whole);
            text.push('.');
            text.push_str(decimals);
        } else {
            text.push_str("0.");
            text.extend(std::iter::repeat_n('0', scale - digits.len()));
            text.push_str(&digits);
        }
        f.pad(&text)
    }
}

/// How a comma in the integer part of a number is read.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum CommaRule {
    /// Commas separate groups of three digits, always.
    ThousandsSeparator,
    /// As above, but a lone comma without a decimal point (`1,000`) is refused: hledger 1.25
    /// reads it as a decimal comma (one) and ledger 3.3 as a thousands separator (a thousand).
    RefuseAmbiguous,
}

/// Parses an optionally signed decimal number, explaining what is wrong when it is not one.
pub(super) fn parse_decimal(text: &str, rule: CommaRule) -> Result<Quantity, String> {
    let (negative, unsigned) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let (whole, decimals) = match unsigned.split_once('.') {
        Some((whole, decimals)) => (whole, Some(decimals)),
        None => (unsigned, None),
    };
    if whole.is_empty() {
        return Err(format!("`{text}` needs a digit before the decimal point"));
    }
    if whole.contains(',') {
        let mut groups = whole.split(',');
        let first_ok = groups
            .next()
            .is_some_and(|g| (1..=3).contains(&g.len()) && g.bytes().all(|b| b.is_ascii_digit()));
        let rest_ok = groups.all(|g| g.len() == 3 && g.bytes().all(|b| b.is_ascii_digit()));
        if !first_ok || !rest_ok {
            return Err(format!(
                "misplaced comma in `{text}`: commas must separate groups of three digits"
            ));
        }
        if rule == CommaRule::RefuseAmbiguous
            && decimals.is_none()
            && whole.matches(',').count() == 1
        {
            return Err(format!(
                "ambiguous number `{text}`: hledger reads the comma as a decimal mark and ledger \
                 as a thousands separator; write it without the comma or with decimals"
            ));
        }
    } else if !whole.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("`{text}` is not a number"));
    }
    let decimals = decimals.unwrap_or("");
    if unsigned.contains('.')
        && (decimals.is_empty() || !decimals.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(format!("`{text}` needs digits after the decimal point"));
    }
    let scale = u8::try_from(decimals.len())
        .ok()
        .filter(|s| *s <= MAX_SCALE)
        .ok_or_else(|| format!("`{text}` has more than {MAX_SCALE} decimals"))?;
    let mut mantissa: i128 = 0;
    for digit in whole
        .bytes()
        .chain(decimals.bytes())
        .filter(u8::is_ascii_digit)
    {
        mantissa = mantissa
            .checked_mul(10)
            .and_then(|m| m.checked_add(i128::from(digit - b'0')))
            .ok_or_else(|| format!("`{text}` is too large"))?;
    }
    Ok(Quantity {
        mantissa: if negative { -mantissa } else { mantissa },
        scale,
    })
}
