"""Sample submissions used by the demo and the tests; see CONTRIBUTING.md."""
