//! The planner: desired state from a stack, the diff against what exists,
//! and the plan that reconciles them. Pure: it touches the system only
//! through traits (later issues add them).

pub mod hash;
