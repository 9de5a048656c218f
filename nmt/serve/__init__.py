"""The translation server: a FastAPI app over one Translator (app.py), the micro-batching
queue that lets concurrent requests share model calls (batching.py), the request limits
(limits.py), typed bodies (schemas.py), the page at / (page.html) and the uvicorn runner
(server.py). Needs the optional extra: pip install 'nmt[serve]'."""
