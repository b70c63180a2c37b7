# The app as a container: CPU torch, a non-root user (UID 1000, as Hugging Face Spaces runs it), a health check.
#   docker build -t quant-explorer . && docker run --rm -p 8501:8501 quant-explorer
# Not built on the project's machines (they have no container engine): see README, "Deploy", for what was tried.
FROM python:3.11-slim

# One torch/OpenMP thread and two malloc arenas: measured lower memory and steadier latency under many visitors
# on a 2-core host (README, "Hosting limits"). The upload cap matches .streamlit/config.toml's maxUploadSize.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    OMP_NUM_THREADS=1 \
    MALLOC_ARENA_MAX=2 \
    EXPLORER_MAX_UPLOAD_MB=200 \
    STREAMLIT_SERVER_PORT=8501 \
    STREAMLIT_SERVER_ADDRESS=0.0.0.0

RUN useradd --create-home --uid 1000 --shell /usr/sbin/nologin app
WORKDIR /app

# CPU torch first (its own layer: the largest, and it changes least), from PyTorch's CPU wheel index only;
# then everything else with the exact pins of requirements.txt (requirements-deploy.txt).
COPY requirements-deploy.txt ./
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
 && pip install -r requirements-deploy.txt

# The code stays owned by root: the app's user can read it, not change it.
COPY . .
USER 1000
# numba's machine code for explorer.fused's kernels, compiled here (~15 s) instead of on a first visitor's click; the
# code is read-only for the app's user, so numba keeps it in the user's cache directory (a host whose CPU differs
# from the build machine's recompiles once, there).
ENV NUMBA_CACHE_DIR=/home/app/.cache/numba
RUN python -c "import torch; from explorer import fused as f; assert all(f.available(torch.zeros(1), u) for u in f.Use)"
EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=90s --retries=3 \
    CMD python -c "import os, urllib.request as u; \
u.urlopen('http://127.0.0.1:%s/_stcore/health' % os.environ['STREAMLIT_SERVER_PORT'], timeout=4)"
CMD ["streamlit", "run", "app.py"]
