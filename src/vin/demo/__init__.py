"""`vin demo`: a local web page to generate long videos, compare strategies side by side, and run the
pairwise user study (votes in SQLite, win rates with 95% intervals).

`votes`, `study`, `render` and `core` need no gradio (they are what the tests call); `app` is the gradio
page and `launch` the command. gradio is the optional extra `demo`: pip install -e ".[demo]".
"""
