"""TinySR: one 3x3 convolution to 3 * scale * scale channels, then a pixel shuffle."""
from torch import nn


class TinySR(nn.Sequential):
    def __init__(self, scale, channels=3):
        super().__init__()
        self.scale = scale
        self.tiny_body = nn.Conv2d(channels, 3 * scale * scale, 3, padding=1)
        self.shuffle = nn.PixelShuffle(scale)
