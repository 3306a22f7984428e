# strategies: sources are added here as the module grows
