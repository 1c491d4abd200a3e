"""Data: how MNIST looks. Sizes, splits, class balance, samples, mean digits, pixels, augmentation."""

import pandas as pd
import streamlit as st
import torch

from mnist_core.data.augment import augment_batch
from mnist_core.data.mnist import class_counts, mean_images
from mnist_core.data.pixels import BLACK, MNIST_MEAN, MNIST_STD, normalize
from mnist_core.figures.dataset import class_distribution_figure, pixel_histogram_figure
from mnist_core.figures.pictures import digit_pictures, digit_sheet
from pages.ui.charts import show_chart
from pages.ui.resources import mnist_or_stop
from pages.ui.shell import ensure_app_shell

ensure_app_shell()
st.title("Data")
st.caption(
    "70,000 handwritten digits, 28x28 pixels each, by Yann LeCun, Corinna Cortes and Christopher "
    "Burges (CC BY-SA 3.0), derived from NIST Special Databases 1 and 3."
)
mnist = mnist_or_stop()


@st.cache_resource(show_spinner=False)
def average_digits():
    """The mean training image of each digit, as pictures (the same on every visit)."""
    return digit_pictures(mean_images(mnist.train_images, mnist.train_labels), scale=3)


# ---------------- sizes and splits ----------------
val_fraction = st.slider(
    "Validation fraction (carved from the 60,000 training images)", 0.0, 0.5, 0.1, 0.05, key="data_val"
)
counts = class_counts(mnist, val_fraction)
c1, c2, c3 = st.columns(3)
c1.metric("Train", f"{sum(counts['train']):,}")
c2.metric("Validation", f"{sum(counts['validation']):,}")
c3.metric("Test", f"{sum(counts['test']):,}")
st.caption(
    "The validation split picks epochs and settings; the test set is only ever measured, "
    "so its accuracy stays an honest estimate."
)

st.subheader("Class balance")
table_col, chart_col = st.columns([2, 3])
table = pd.DataFrame(counts, index=pd.Index(range(10), name="digit"))
table_col.table(table)  # HTML: a screen reader reads it (st.dataframe draws on a canvas)
show_chart(class_distribution_figure(counts), container=chart_col, width="stretch", key="balance")

# ---------------- samples ----------------
st.subheader("Samples per class")
digit = st.segmented_control("Digit", list(range(10)), default=3, key="data_digit")
digit = 3 if digit is None else digit
idx = torch.nonzero(mnist.train_labels == digit).flatten()[:24]
st.image(
    digit_sheet(mnist.train_images[idx], cols=12),
    width="stretch",
    output_format="PNG",
    alt=f"A grid of the first {len(idx)} training images labelled {digit}",
)
pick = st.select_slider(
    "Enlarge one", list(range(len(idx))), key="data_enlarge", format_func=lambda i: f"#{int(idx[i])}"
)
big_col, text_col = st.columns([1, 3])
big_col.image(
    mnist.train_images[idx[pick]].numpy(),
    width=196,
    caption=f"training image #{int(idx[pick])}",
    alt=f"training image {int(idx[pick]):,}: a {digit}, enlarged",
)
text_col.write(
    "Each digit is 28x28 grayscale pixels, white ink on black, the digit scaled to fit a 20x20 "
    "box and centred by its centre of mass. The Draw page makes your own digits the same way."
)

st.subheader("The average digit")
st.image(
    average_digits(),
    caption=[str(d) for d in range(10)],
    alt=[f"the average of every training image of the digit {d}" for d in range(10)],
    width=84,
    output_format="PNG",
)
st.caption(
    "Each picture averages every training image of that digit: the blur shows how much "
    "handwriting varies, the bright core what all of them share."
)

# ---------------- pixels and normalisation ----------------
st.subheader("Pixel values and normalisation")
hist_col, norm_col = st.columns([3, 2])
show_chart(
    pixel_histogram_figure(mnist.train_images[:10000]), container=hist_col, width="stretch", key="hist"
)
norm_col.markdown(
    f"Across the training set, pixels (scaled to 0-1) have mean **{MNIST_MEAN}** and standard deviation "
    f"**{MNIST_STD}**. Every model here sees `(pixel - {MNIST_MEAN}) / {MNIST_STD}`: inputs centred on "
    "zero with unit spread, which keeps early gradients well scaled so training starts fast. A black "
    f"pixel becomes {BLACK:.3f} and a white one {(1 - MNIST_MEAN) / MNIST_STD:.3f}. "
    "The same constants are used for training, evaluation and your drawings."
)

# ---------------- augmentation ----------------
st.subheader("Augmentation preview")
a1, a2, a3, a4 = st.columns(4)
aug = dict(
    rotate=a1.slider("Rotation (degrees)", 0.0, 30.0, 10.0, key="data_rot"),
    translate=a2.slider("Shift (fraction)", 0.0, 0.3, 0.1, key="data_shift"),
    scale=a3.slider("Zoom (fraction)", 0.0, 0.3, 0.1, key="data_zoom"),
    erase=a4.slider("Erase probability", 0.0, 1.0, 0.0, key="data_erase"),
)
batch = normalize(mnist.train_images[:12]).repeat(2, 1, 1, 1)
shown = augment_batch(batch, generator=torch.Generator().manual_seed(0), **aug)
st.image(
    digit_sheet(shown, cols=12),
    width="stretch",
    output_format="PNG",
    alt="Two rows of the same 12 training digits, each randomly rotated, shifted, zoomed or erased",
)
st.caption(
    "Two random versions of the same 12 training digits: each image draws its own rotation, shift, "
    "zoom and erasing. Augmentation is applied to the training split only."
)
