"""Batch evaluation: many intents' ContextPacks as columns, modules' batch forms, and the
orchestrator over them (see ARCHITECTURE.md, "Batch evaluation")."""
