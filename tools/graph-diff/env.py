# Alembic env.py for tools/graph-diff: online mode only, against the SQLite
# file named by $GRAPH_DIFF_URL (sqlite:////abs/path.db). No logging setup,
# so Alembic's warnings reach stderr through Python's last-resort handler.
import os

from sqlalchemy import create_engine, pool

from alembic import context

engine = create_engine(os.environ["GRAPH_DIFF_URL"], poolclass=pool.NullPool)
with engine.connect() as connection:
    context.configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()
