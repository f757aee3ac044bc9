"""The unit's SQLite database (peewee, WAL): models, migrations and the queries the portal uses."""
