# env.py for the benchmark's Alembic projects (tools/bench/bench.py copies it into each one).
#
# The database URL comes from the environment variable BENCH_DATABASE_URL. Everything else is
# Alembic's default online setup: one connection, no target metadata, and one transaction for the
# whole command unless BENCH_TRANSACTION_PER_MIGRATION=1.
import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy import create_engine, pool

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name)

url = os.environ["BENCH_DATABASE_URL"]
per_migration = os.environ.get("BENCH_TRANSACTION_PER_MIGRATION") == "1"


def run_migrations_offline():
    context.configure(url=url, target_metadata=None, literal_binds=True,
                      transaction_per_migration=per_migration)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=None,
                          transaction_per_migration=per_migration)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
