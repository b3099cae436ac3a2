"""``Model``: the top-level network (``cnnlab.Sequential``) with fit/evaluate/predict/save."""
from __future__ import annotations

from ..layers import Sequential as _Sequential
from ..layers import register as _register
from . import checkpoint as _ckpt
from . import loop as _loop


@_register
class Model(_Sequential):
    """A :class:`cnnlab.layers.Sequential` that can train, evaluate, predict and save itself.

        model = cl.Sequential([Conv2D(8, 3, padding='same'), ReLU(), MaxPool2D(2),
                               Flatten(), Dense(10)], input_shape=(1, 28, 28), seed=0)
        history = model.fit(x, y, epochs=5, validation_data=(xv, yv), seed=0)
        model.evaluate(xt, yt)      # {'loss': ..., 'accuracy': ...}
        model.save('mnist.npz', optimizer=model.optimizer, epoch=5)
        cl.load_model('mnist.npz')

    The model should output class scores (logits), shape (N, num_classes): the losses apply
    the softmax (or hinge) themselves and ``predict`` returns softmax probabilities. A model
    that ends in a softmax (``Softmax()`` or ``Dense(10, activation='softmax')``) works
    too: fit/evaluate then use the cross-entropy of its probabilities, whose gradient
    through the softmax equals the logits form, and ``predict`` returns its outputs as is.

    Registered with :func:`cnnlab.layers.register` as 'Model', so
    ``cnnlab.layers.deserialize`` rebuilds it (``cnnlab.Sequential`` is this class).

    Attributes set by ``fit``: ``optimizer`` (the one used last; the next ``fit`` reuses it
    when none is given), ``train_seed`` (the shuffling seed, saved in checkpoints) and
    ``stop_training`` (callbacks set it to end training early).
    """

    optimizer = None
    train_seed = None
    stop_training = False

    def fit(self, x, y, epochs=1, batch_size=64, optimizer=None, loss="softmax",
            validation_data=None, callbacks=None, verbose=1, seed=None, shuffle=True,
            initial_epoch=0, augment=None):
        """Train on ``x`` (N, C, H, W) floats and ``y`` (N,) integer labels. -> History.

        - ``epochs``: the index of the last epoch, as in Keras: trains epochs
          ``initial_epoch .. epochs-1`` (so ``initial_epoch=k`` resumes a run of
          ``epochs`` epochs after ``k`` were done).
        - ``optimizer``: a ``cnnlab.optim`` optimizer; default ``self.optimizer`` if a
          previous fit/load set one, else ``Adam(lr=1e-3)``.
        - ``loss``: 'softmax' (cross-entropy) or 'svm' (multiclass hinge), or a callable
          ``(scores, y) -> (loss, dscores)``.
        - ``validation_data``: ``(x_val, y_val)``, evaluated after each epoch
          ('val_loss', 'val_accuracy').
        - ``callbacks``: list of ``cnnlab.training.Callback`` (EarlyStopping,
          ModelCheckpoint, LearningRateScheduler, ReduceLROnPlateau, ...).
        - ``verbose``: 0 silent, 1 a tqdm bar per epoch (loss, accuracy, img/s, ETA) plus
          a summary line, 2 the summary line only.
        - ``seed``: the seed of all training randomness: epoch ``e`` shuffles with
          ``(seed, e)`` and gives every Dropout layer a generator derived from
          ``(seed, e, position)`` (replacing its own), so runs are reproducible and a resumed
          run repeats an uninterrupted one bitwise. None: fresh entropy, except when
          resuming (``initial_epoch > 0``) a model that remembers its ``train_seed``.
        - ``shuffle``: reshuffle the samples every epoch (else keep their order).
        - ``augment``: callable ``(x_batch, rng) -> x_batch`` (or ``x_batch -> x_batch``)
          applied to each training batch.

        Raises ``TrainingDivergedError`` (a FloatingPointError) as soon as the loss is
        NaN or infinite, naming the epoch and batch.
        """
        return _loop.fit(self, x, y, epochs=epochs, batch_size=batch_size,
                         optimizer=optimizer, loss=loss, validation_data=validation_data,
                         callbacks=callbacks, verbose=verbose, seed=seed, shuffle=shuffle,
                         initial_epoch=initial_epoch, augment=augment)

    def evaluate(self, x, y, batch_size=256, loss="softmax"):
        """Mean loss and accuracy over (x, y) in inference mode, batched.
        -> ``{'loss': float, 'accuracy': float}``."""
        return _loop.evaluate(self, x, y, batch_size=batch_size, loss=loss)

    def predict(self, x, batch_size=256):
        """Class probabilities (softmax of the scores), shape (N, num_classes), computed
        in inference mode in batches (no caches kept)."""
        return _loop.predict(self, x, batch_size=batch_size)

    def predict_classes(self, x, batch_size=256):
        """The most probable class of each sample, (N,) int64."""
        return self.predict(x, batch_size=batch_size).argmax(axis=1)

    def save(self, path, optimizer=None, epoch=None):
        """Write architecture and weights (and, if given, the optimizer's class,
        hyperparameters and state, and ``epoch`` = epochs completed) to one ``.npz`` file,
        atomically. The training seed is saved too. See :mod:`cnnlab.training.checkpoint`.

        Refused with a ValueError, leaving any existing file untouched, when a weight or
        optimizer array holds NaN/inf or a layer's class is not registered
        (:func:`cnnlab.layers.register`; the message says how)."""
        _ckpt.save_model(self, path, optimizer=optimizer, epoch=epoch)

    def to_fully_convolutional(self):
        """A new model computing the same function with the Dense head as convolutions:
        the first Dense after a (C, h, w) volume becomes Conv2D(units, (h, w)), later ones
        1x1 convolutions. On a larger input it returns a grid of class scores, one per
        window at the net's total stride. See :mod:`cnnlab.training.convert`."""
        from .convert import to_fully_convolutional  # convert builds Models: import late
        return to_fully_convolutional(self)

    @classmethod
    def load(cls, path, custom_objects=None):
        """Same as ``cnnlab.load_model(path, custom_objects)``."""
        return _ckpt.load_checkpoint(path, model_cls=cls, custom_objects=custom_objects).model


Sequential = Model
