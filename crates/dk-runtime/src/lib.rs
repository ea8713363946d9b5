//! `dk-runtime` owns everything that moves or tests data (DESIGN §9): `dk run` and `dk test`.
//!
//! Modules (one concern each):
