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

    Threads: inference (``predict``, ``evaluate``, ``forward(x, training=False)``) keeps
    no cache and never touches the caches a training step keeps, so it may run in other
    threads while ``fit`` trains the same model in one; it then sees weights (and batch
    norm statistics) from somewhere in the middle of training, possibly half-updated.
    Two ``fit`` calls, or any two training/gradient passes (``forward(..., cache=True)``
    then ``backward``), on one model at the same time are not safe; nor is changing
    the model (``add``, ``set_weights``, ``build``) while another thread uses it.
    """

    optimizer = None
    train_seed = None
    stop_training = False

    def fit(self, x, y=None, epochs=1, batch_size=64, optimizer=None, loss="softmax",
            validation_data=None, callbacks=None, verbose=1, seed=None, shuffle=True,
            initial_epoch=0, augment=None, validation_split=0.0, metrics=None,
            distributed=False, sync_batchnorm=False):
        """Train on ``x`` (N, C, H, W) floats and ``y`` (N,) integer labels. -> History.

        - ``x``: an array, or a ``cnnlab.data.DataLoader`` / any iterable of
          ``(x_batch, y_batch)`` (then ``y`` is None and ``batch_size`` / ``shuffle`` are
          the iterable's business). It is iterated afresh each epoch; a one-shot generator
          can serve one epoch only (more are refused at once, with an explanation).
        - ``epochs``: the index of the last epoch, as in Keras: trains epochs
          ``initial_epoch .. epochs-1`` (so ``initial_epoch=k`` resumes a run of
          ``epochs`` epochs after ``k`` were done); ``initial_epoch > epochs`` is an error.
        - ``optimizer``: a ``cnnlab.optim`` optimizer or a name ('sgd', 'adam', 'adamw',
          'rmsprop': the class defaults); default ``self.optimizer`` if a previous
          fit/load set one, else ``Adam(lr=1e-3)``. Its ``lr`` may be a schedule
          (``SGD(lr=StepLR(0.1, 10))``): set per epoch, or per step for ``OneCycle``.
        - ``loss``: 'softmax' (cross-entropy) or 'svm' (multiclass hinge), or a callable
          ``(scores, y) -> (loss, dscores)``.
        - ``metrics``: reported beside the loss and 'accuracy' (always there): names
          ('top5', 'top_k_accuracy', ...) or ``cnnlab.training.metrics`` objects
          (``TopKAccuracy(3)``); in the bar, the History, and with a 'val_' prefix.
        - ``validation_data``: ``(x_val, y_val)`` or an iterable of batches, evaluated
          after each epoch ('val_loss', 'val_accuracy', ...). ``validation_split``: a
          fraction in [0, 1) of x held out instead -- the LAST samples, taken before any
          shuffling (Keras's rule; shuffle x first if it is sorted by class).
        - ``callbacks``: list of ``cnnlab.training.Callback`` (EarlyStopping,
          ModelCheckpoint, LearningRateScheduler, ReduceLROnPlateau, ...).
        - ``verbose``: 0 silent, 1 a tqdm bar per epoch (loss, metrics, img/s, ETA) plus
          a summary line, 2 the summary line only.
        - ``seed``: the seed of all training randomness: epoch ``e`` shuffles with
          ``(seed, e)`` and gives every Dropout layer a generator derived from
          ``(seed, e, position)`` (replacing its own), so runs are reproducible and a resumed
          run repeats an uninterrupted one bitwise. None: fresh entropy, except when
          resuming (``initial_epoch > 0``) a model that remembers its ``train_seed``.
        - ``shuffle``: reshuffle the samples every epoch (else keep their order).
        - ``augment``: callable ``(x_batch, rng) -> x_batch`` (or ``x_batch -> x_batch``)
          applied to each training batch; it must keep the batch size.
        - ``distributed``: data-parallel over the processes of ``mpiexec`` (call fit on
          every rank with the same data): ``batch_size`` is the global batch, each rank
          takes its share and gradients are summed with MPI; see
          :mod:`cnnlab.distributed.fit` (arrays only; loss and accuracy are reported).
          ``sync_batchnorm``: batch norm with the statistics of the whole global batch
          instead of each rank's share.

        Raises ``TrainingDivergedError`` (a FloatingPointError) as soon as the loss is
        NaN or infinite, naming the epoch and batch, and at the end of an epoch whose
        weights are no longer finite. Warns (RuntimeWarning naming the learning rate)
        when the loss grows by orders of magnitude. NaN / inf in ``x`` or
        ``validation_data`` are rejected before training.
        """
        return _loop.fit(self, x, y, epochs=epochs, batch_size=batch_size,
                         optimizer=optimizer, loss=loss, validation_data=validation_data,
                         callbacks=callbacks, verbose=verbose, seed=seed, shuffle=shuffle,
                         initial_epoch=initial_epoch, augment=augment,
                         validation_split=validation_split, metrics=metrics,
                         distributed=distributed, sync_batchnorm=sync_batchnorm)

    def evaluate(self, x, y=None, batch_size=256, loss="softmax", metrics=None,
                 distributed=False):
        """Mean loss, accuracy and ``metrics`` (as in ``fit``) over (x, y) in inference
        mode, batched. ``x`` may be a DataLoader / iterable of (x_batch, y_batch) with
        ``y`` None. -> ``{'loss': float, 'accuracy': float, ...}``. ``distributed``: every
        MPI rank evaluates its share of the arrays and the results are combined (loss and
        accuracy; see cnnlab.distributed)."""
        if distributed:
            if metrics:
                raise ValueError("evaluate(distributed=True) reports the loss and accuracy "
                                 "only")
            from ..distributed import evaluate
            return evaluate(self, x, y, batch_size=batch_size, loss=loss)
        return _loop.evaluate(self, x, y, batch_size=batch_size, loss=loss, metrics=metrics)

    def predict(self, x, batch_size=256, distributed=False):
        """Class probabilities (softmax of the scores), shape (N, num_classes), computed
        in inference mode in batches (no caches kept). ``x``: a batch (N, C, H, W) -- one
        image (C, H, W) is refused with a hint to use ``x[None]`` -- or a DataLoader /
        iterable of x batches or (x_batch, y_batch) pairs. ``distributed``: every MPI rank
        predicts its share of the array, and every rank returns all rows."""
        if distributed:
            from ..distributed import predict
            return predict(self, x, batch_size=batch_size)
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
