"""Gateway benchmark: its overhead against calling the same MLServer replica directly."""
