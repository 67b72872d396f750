"""The demo host: a Chalice app that offers longtask's demo tasks at its root.

Add a task of your own in three steps: write a function of (params, ctx) that
calls ctx.log_progress(message, step, total_steps) now and then and returns its
result; declare it, e.g.

    @tasks.task("thumbnails", title="Make thumbnails", params={"album": Text()})
    def thumbnails(params, ctx):
        ...
        return File(zip_bytes, "application/zip", filename="thumbnails.zip")

and start it with POST /tasks/thumbnails. The demo tasks are declared the same way
in chalicelib/demo_tasks.py; the prod stage leaves them out (LONGTASK_DEMO_TASKS=false).
"""

from chalice import Chalice

from chalicelib import demo_tasks
from chalicelib.longtask import LongTasks
from chalicelib.longtask.settings import demo_tasks_enabled

app = Chalice(app_name="longtask")
tasks = LongTasks(app)  # the routes at the root, the worker and the dead-letter handler

# Lambda looks its handlers up by name in this module: keep these three lines.
worker = tasks.worker
dead_letters = tasks.dead_letters
reconciler = tasks.reconciler

if demo_tasks_enabled():
    demo_tasks.declare(tasks)
