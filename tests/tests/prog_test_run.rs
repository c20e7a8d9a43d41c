//! The fixture table through `BPF_PROG_TEST_RUN` on the real, verifier-checked program.

use aya::{
    Ebpf,
    maps::{
        Array, MapData, PerCpuArray, PerCpuHashMap, PerCpuValues,
        lpm_trie::{Key, LpmTrie},
    },
    programs::{TestRun as _, TestRunOptions, Xdp},
};
use icmp_guard::{cidr::Cidr, object};
use icmp_guard_common::{Config, Reason, SourceKey, SourceState, bucket::Bucket, maps};
use icmp_guard_tests::fixtures::cases;

struct Loaded {
    ebpf: Ebpf,
}

impl Loaded {
    fn new() -> Self {
        let mut ebpf = Ebpf::load(object::ICMP_GUARD).expect("the object loads");
        let program: &mut Xdp = ebpf.program_mut(maps::PROGRAM).unwrap().try_into().unwrap();
        program.load().expect("the verifier accepts the program");
        Self { ebpf }
    }

    fn set_config(&mut self, cfg: &Config) {
        let mut config: Array<&mut MapData, Config> =
            Array::try_from(self.ebpf.map_mut(maps::CONFIG).unwrap()).unwrap();
        config.set(0, cfg, 0).unwrap();
    }

    /// Forgets every source and refills the global budget.
    fn reset_state(&mut self) {
        let mut sources: PerCpuHashMap<&mut MapData, SourceKey, SourceState> =
            PerCpuHashMap::try_from(self.ebpf.map_mut(maps::SOURCES).unwrap()).unwrap();
        let keys: Vec<SourceKey> = sources.keys().map(Result::unwrap).collect();
        for key in keys {
            sources.remove(&key).unwrap();
        }
        let mut global: PerCpuArray<&mut MapData, Bucket> =
            PerCpuArray::try_from(self.ebpf.map_mut(maps::GLOBAL).unwrap()).unwrap();
        let cpus = aya::util::nr_cpus().unwrap();
        global
            .set(
                0,
                PerCpuValues::try_from(vec![Bucket::default(); cpus]).unwrap(),
                0,
            )
            .unwrap();
    }

    /// Replaces the contents of a list.
    fn set_list(&mut self, name: &str, prefixes: &[Cidr]) {
        let mut trie: LpmTrie<&mut MapData, [u8; 16], u8> =
            LpmTrie::try_from(self.ebpf.map_mut(name).unwrap()).unwrap();
        let keys: Vec<Key<[u8; 16]>> = trie.keys().map(Result::unwrap).collect();
        for key in keys {
            trie.remove(&key).unwrap();
        }
        for p in prefixes {
            trie.insert(&Key::new(p.len, p.addr), 1, 0).unwrap();
        }
    }

    fn counters(&self) -> Vec<u64> {
        let counters: PerCpuArray<&MapData, u64> =
            PerCpuArray::try_from(self.ebpf.map(maps::COUNTERS).unwrap()).unwrap();
        Reason::ALL
            .iter()
            .map(|r| counters.get(&r.slot(), 0).unwrap().iter().sum())
            .collect()
    }

    fn run(&self, frame: &[u8], repeat: u32) -> u32 {
        let program: &Xdp = self
            .ebpf
            .program(maps::PROGRAM)
            .unwrap()
            .try_into()
            .unwrap();
        let mut out = vec![0u8; frame.len() + 256];
        let mut opts = TestRunOptions::new();
        opts.data_in = Some(frame);
        opts.data_out = Some(&mut out);
        opts.repeat = repeat;
        program
            .test_run(opts)
            .expect("BPF_PROG_TEST_RUN")
            .return_value
    }
}

#[test]
fn every_fixture_through_bpf_prog_test_run() {
    let mut prog = Loaded::new();
    for case in cases() {
        prog.set_config(&case.effective_config());
        prog.set_list(maps::ALLOW, &case.allow);
        prog.set_list(maps::DENY, &case.deny);
        prog.reset_state();
        let before = prog.counters();
        let mut last = None;
        for step in &case.steps {
            last = Some(prog.run(&step.frame, step.times));
        }
        let after = prog.counters();
        assert_eq!(
            last,
            Some(case.verdict.action()),
            "{}: XDP action",
            case.what
        );
        for (i, reason) in Reason::ALL.iter().enumerate() {
            assert_eq!(
                after[i] - before[i],
                case.expected(*reason),
                "{}: counter {}",
                case.what,
                reason.name()
            );
        }
    }
}
