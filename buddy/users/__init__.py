"""Users: accounts, versioned risk rules, exit templates and preferences (seed tables
user_accounts and user_rules)."""
