//! Supertraits that keep public traits closed: users name them in bounds and get them from the
//! types flowcore makes, but cannot implement them, so that flowcore can add methods to them
//! without breaking anyone. One per trait, so that blanket impls of two of them never overlap.

/// For [`WaitFor`](crate::WaitFor).
pub trait WaitFor {}

/// For [`TaskBody`](crate::TaskBody).
pub trait TaskBody {}

/// For [`DeploymentFlow`](crate::DeploymentFlow).
pub trait DeploymentFlow<M> {}

/// For [`IntoSchedule`](crate::IntoSchedule).
pub trait IntoSchedule {}

/// For [`Background`](crate::Background).
pub trait Background {}

/// For [`BackgroundFn`](crate::BackgroundFn).
pub trait BackgroundFn<Args> {}
