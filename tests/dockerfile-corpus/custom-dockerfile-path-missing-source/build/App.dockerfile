FROM scratch
COPY only-beside-dockerfile.txt /
