"""Loss functions shared by the stages: pure functions, no state, no networks inside."""
