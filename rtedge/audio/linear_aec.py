"""A linear echo canceller for the detectors: a partitioned-block frequency-domain adaptive
filter (overlap-save, normalised per bin), on 16 kHz audio.

WebRTC's AEC3 (``rtedge.audio.echo``) cleans what the service hears, but its residual echo
suppressor also removes much of the user's voice wherever the echo is strong: a wake word said
while the assistant talks no longer fires the model on AEC3's output. Subtracting the linear
echo estimate alone leaves the near end whole, which is what the wake word and the voice
detector need; the residual it leaves is faint (the echo path of a speaker and a mic in one box
is close to linear)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from rtedge.media.dsp import Int16Array

Complex = npt.NDArray[np.complex128]
Float = npt.NDArray[np.float64]


class LinearEchoCanceller:
    """``process(near, far)`` on blocks of ``block`` samples; the filter covers
    ``block * partitions`` samples of echo path (at 16 kHz: 10 ms x 20 = 200 ms)."""

    def __init__(self, block: int = 160, partitions: int = 20, step: float = 0.5) -> None:
        self.block = block
        self.partitions = partitions
        self.step = step
        bins = block + 1
        # far spectra, newest first, as a view into a doubled ring (no copy per block): each
        # spectrum is written at h and h + partitions, and the view is [h, h + partitions)
        self._ring: Complex = np.zeros((2 * partitions, bins), dtype=np.complex128)
        self._head = 0
        self._far_spectra: Complex = self._ring[:partitions]
        self._constrain_next = 0
        self._weights: Complex = np.zeros((partitions, bins), dtype=np.complex128)
        self._prev: Float = np.zeros(block)
        self._power: Float = np.zeros(bins)
        self._zeros: Float = np.zeros(block)
        # keeps the step bounded when the far end is silent (no division by ~0)
        self._floor = float(partitions) * (block * 2) * (64.0**2)

    def process(self, near: Int16Array, far: Int16Array) -> Int16Array:
        b = self.block
        f = far.astype(np.float64)
        x = np.fft.rfft(np.concatenate((self._prev, f)))
        self._prev = f
        p = self.partitions
        self._head = (self._head - 1) % p
        self._ring[self._head] = x
        self._ring[self._head + p] = x
        self._far_spectra = self._ring[self._head : self._head + p]
        estimate = np.fft.irfft((self._weights * self._far_spectra).sum(axis=0))[b:]
        error = near.astype(np.float64) - estimate
        err_spec = np.fft.rfft(np.concatenate((self._zeros, error)))
        self._power = 0.9 * self._power + 0.1 * (x.real**2 + x.imag**2)
        norm = self.partitions * self._power + self._floor
        gradient = self.step * np.conj(self._far_spectra) * (err_spec / norm)
        self._weights += gradient
        # The constraint (each partition's taps one block long) on one partition per block, in
        # turn, as Speex's MDF does: a full constraint every block costs two FFTs per partition.
        k = self._constrain_next
        self._constrain_next = (k + 1) % p
        taps = np.fft.irfft(self._weights[k])
        taps[b:] = 0.0
        self._weights[k] = np.fft.rfft(taps)
        out: Int16Array = np.clip(error, -32768, 32767).astype(np.int16)
        return out

    def reset(self) -> None:
        self._weights[:] = 0
        self._ring[:] = 0
        self._power[:] = 0
        self._prev[:] = 0


__all__ = ["LinearEchoCanceller"]
