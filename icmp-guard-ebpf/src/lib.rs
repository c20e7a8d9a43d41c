//! Empty library target: lets `icmp-guard` list this crate as a build-dependency, so cargo
//! rebuilds the embedded program when it changes. The program itself is `src/main.rs`.
#![no_std]
