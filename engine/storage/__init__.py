"""Storage: the schema, its migrations, the database connection and the group-commit writer."""
