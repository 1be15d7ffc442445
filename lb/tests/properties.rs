//! Property tests: the table hash equals the reference for any key and
//! input, and the port heap always yields the least-loaded available port.

use lb::balancer::PortHeap;
use lb::toeplitz::{toeplitz_hash_reference, Toeplitz};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn tables_equal_reference(
        key in proptest::collection::vec(any::<u8>(), 40..=52),
        input in proptest::collection::vec(any::<u8>(), 0..=36),
    ) {
        let t = Toeplitz::new(&key, key.len() - 4).unwrap();
        prop_assert_eq!(t.hash(&input), toeplitz_hash_reference(&key, &input));
    }

    #[test]
    fn hash_is_linear(
        a in proptest::array::uniform12(any::<u8>()),
        b in proptest::array::uniform12(any::<u8>()),
    ) {
        let t = Toeplitz::default();
        let x: [u8; 12] = core::array::from_fn(|i| a[i] ^ b[i]);
        prop_assert_eq!(t.hash(&x), t.hash(&a) ^ t.hash(&b));
    }

    #[test]
    fn heap_yields_least_loaded_available_port(
        keys in proptest::collection::vec(0u64..1_000, 1..=16),
        available in any::<u16>(),
        charges in proptest::collection::vec((0usize..16, 0u64..300, any::<bool>()), 0..40),
    ) {
        let n = keys.len();
        let available = available & (((1u32 << n) - 1) as u16);
        let mut heap = PortHeap::default();
        heap.rebuild(&keys, available);
        let mut model = keys.clone();
        let up = |p: usize| available >> p & 1 == 1;
        let expected = |model: &[u64]| {
            (0..n).filter(|&p| up(p)).min_by_key(|&p| (model[p], p)).map(|p| p as u8)
        };
        prop_assert_eq!(heap.peek_min(), expected(&model));
        for (port, delta, raise) in charges {
            let port = port % n;
            if !up(port) {
                continue;
            }
            if raise {
                heap.add_load(port as u8, delta);
                model[port] += delta;
            } else {
                heap.remove_load(port as u8, delta);
                model[port] = model[port].saturating_sub(delta);
            }
            prop_assert_eq!(heap.peek_min(), expected(&model));
        }
    }
}
