//! Client for the re6st registry. Filled in by the registry-client issue.
