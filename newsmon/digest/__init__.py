"""The weekly digest: gather a week from the warehouse, render it as HTML, text and charts, mail it.

report.py gathers (SQL in newsmon.warehouse.digest), stories.py groups coverage of one story,
charts.py draws, render.py turns the report into HTML and text, mail.py builds and sends the
message. The Prefect flow in newsmon.flows.digest wires them together.
"""
