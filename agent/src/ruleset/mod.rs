//! The guest firewall model: parsing saved iptables/ip6tables rulesets and judging what they
//! do to a given packet. Pure functions; the source (`sources/rulesets.rs`) reads the rulesets
//! and the checks (`checks/firewall/`) ask the questions.

pub mod eval;
pub mod ipset;
pub mod iptables;
pub mod nft;
