//! Durations written in the attributes, parsed when the user's crate compiles.

use std::time::Duration;

use proc_macro2::TokenStream;
use quote::quote;
use syn::LitStr;

use crate::expand::Krate;

/// Parses `"250ms"`, `"15s"`, `"1h 30m"`, `"1d"` with humantime.
pub(crate) fn parse(lit: &LitStr) -> syn::Result<Duration> {
    let text = lit.value();
    humantime::parse_duration(text.trim()).map_err(|e| {
        syn::Error::new(
            lit.span(),
            format!(
                "invalid duration {text:?}: {e}; write it like \"250ms\", \"15s\", \"1h 30m\" or \"1d\""
            ),
        )
    })
}

/// A `Duration` constant: `::flowcore::__private::Duration::new(15, 0)`.
pub(crate) fn tokens(d: Duration, krate: &Krate) -> TokenStream {
    let (secs, nanos) = (d.as_secs(), d.subsec_nanos());
    quote!(#krate::__private::Duration::new(#secs, #nanos))
}
