//! Every builtin parses, round-trips through its canonical form and compiles.

use ward_profiles::*;

#[test]
fn every_builtin_parses_roundtrips_and_compiles() {
    for name in builtin_names() {
        let p = load(name, &[]).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(p.name(), *name);
        let again = parse(&format!("{name}.toml"), &p.to_toml(), &[])
            .unwrap_or_else(|e| panic!("{name} canonical form: {e}\n{}", p.to_toml()));
        assert_eq!(p, again, "{name}");
        assert_eq!(p.hash(), again.hash());
        for arch in Arch::ALL {
            let prog = compile_seccomp(&p, arch, Mode::Enforce)
                .unwrap_or_else(|e| panic!("{name}/{arch}: {e}"));
            assert_eq!(prog.filters.len(), 1);
            assert!(!prog.filters[0].is_empty());
        }
    }
}
