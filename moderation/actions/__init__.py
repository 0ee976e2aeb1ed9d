"""Action rules: what the platform should do with a decision (allow, blur, …, block)."""
