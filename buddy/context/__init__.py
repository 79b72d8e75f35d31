"""Context: the point-in-time ContextPack and its builder."""
