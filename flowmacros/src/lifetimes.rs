//! Naming the elided lifetimes of argument types.
//!
//! The wrapper returns `TaskCall<impl TaskBody<…> + use<…>>`, and a `use<…>` bound can only
//! list named lifetimes. So `&str` becomes `&'__fc0 str` and `Foo<'_>` becomes `Foo<'__fc1>`,
//! each a new lifetime parameter of the wrapper, as the compiler does for elided ones. Lifetimes
//! inside `fn(&str)` pointers and `Fn(&str)` bounds belong to those and are left alone.

use syn::visit_mut::{self, VisitMut};
use syn::{Lifetime, ParenthesizedGenericArguments, Type, TypeFnPtr, TypeReference};

#[derive(Default)]
pub(crate) struct Namer {
    named: Vec<Lifetime>,
}

impl Namer {
    pub(crate) fn name_elided(&mut self, ty: &mut Type) {
        self.visit_type_mut(ty);
    }

    /// The lifetimes created, to declare as generic parameters.
    pub(crate) fn into_lifetimes(self) -> Vec<Lifetime> {
        self.named
    }

    fn fresh(&mut self, span: proc_macro2::Span) -> Lifetime {
        let lifetime = Lifetime::new(&format!("'__fc{}", self.named.len()), span);
        self.named.push(lifetime.clone());
        lifetime
    }
}

impl VisitMut for Namer {
    fn visit_type_reference_mut(&mut self, r: &mut TypeReference) {
        if r.lifetime.is_none() {
            r.lifetime = Some(self.fresh(r.and_token.span));
        }
        visit_mut::visit_type_reference_mut(self, r);
    }

    fn visit_lifetime_mut(&mut self, lifetime: &mut Lifetime) {
        if lifetime.ident == "_" {
            *lifetime = self.fresh(lifetime.span());
        }
    }

    fn visit_type_fn_ptr_mut(&mut self, _: &mut TypeFnPtr) {}

    fn visit_parenthesized_generic_arguments_mut(&mut self, _: &mut ParenthesizedGenericArguments) {
    }
}
