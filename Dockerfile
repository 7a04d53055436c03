# GPU image for clusters, with the same pinned stack as pyproject.toml.
#   docker build -t representation_probe .
#   docker run --gpus all -v $PWD/outputs:/app/outputs representation_probe \
#       python -m representation_probe invert trainer=gpu model.image_size=299 layer=[conv1,conv2,conv3,conv4,conv5]
# torch 2.14.1 wheels on PyPI bundle CUDA; the base image only needs a matching driver runtime.
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu22.04

ENV DEBIAN_FRONTEND=noninteractive PIP_NO_CACHE_DIR=1 WANDB_MODE=offline
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3.11 python3.11-venv git \
    && rm -rf /var/lib/apt/lists/*
RUN python3.11 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /app
COPY pyproject.toml setup.py constraints.txt ./
COPY representation_probe ./representation_probe
COPY hydra_plugins ./hydra_plugins
COPY conf ./conf
# torch and torchvision pinned first and exactly, so no other package can pull a different torch.
RUN pip install -c constraints.txt -e .
CMD ["python", "-m", "representation_probe", "--help"]
