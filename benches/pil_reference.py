"""PIL + torchvision doing the work of benches/decode_augment.rs, on the same
files, one core: open, RandomResizedCrop, flip, ColorJitter(0.4, 0.4, 0.4,
0.2), ToTensor, Normalize. Prints `images_per_second_per_core N`.

Usage: pil_reference.py DIR OUT_SIDE. Exits 3 with a message when PIL or
torchvision is missing, so the Rust bench reports it as skipped."""
import os
import sys
import time

try:
    import torch
    from PIL import Image
    from torchvision import transforms
except ImportError as e:  # pragma: no cover - depends on the machine
    print(f"PIL/torchvision not installed ({e})", file=sys.stderr)
    sys.exit(3)

torch.set_num_threads(1)
directory, side = sys.argv[1], int(sys.argv[2])
files = sorted(os.path.join(directory, f) for f in os.listdir(directory) if f.endswith(".jpg"))
transform = transforms.Compose([
    transforms.RandomResizedCrop(side),
    transforms.RandomHorizontalFlip(),
    transforms.ColorJitter(0.4, 0.4, 0.4, 0.2),
    transforms.ToTensor(),
    transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
])
torch.manual_seed(0)
best = float("inf")
for _ in range(3):
    start = time.perf_counter()
    for f in files:
        with Image.open(f) as im:
            transform(im.convert("RGB"))
    best = min(best, time.perf_counter() - start)
print(f"images_per_second_per_core {len(files) / best:.1f}")
