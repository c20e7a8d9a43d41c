//! The XDP program's verdict logic run on the host: the product's own model
//! ([`icmp_guard::model::HostEnv`], which `icmp-guard replay` runs captures through), whose
//! clock stands still (like a burst inside one `BPF_PROG_TEST_RUN` call) unless the caller
//! moves it (the differential fuzzer sets it to the program's clock before each frame).

pub use icmp_guard::model::HostEnv;
