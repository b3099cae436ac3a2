"""Training: ``Model`` (= ``cnnlab.Sequential``) with fit/evaluate/predict/save, callbacks,
History and checkpoint files.

    import cnnlab as cl
    model = cl.Sequential([...], input_shape=(1, 28, 28))
    history = model.fit(x, y, epochs=3, validation_data=(xv, yv), seed=0,
                        callbacks=[cl.training.EarlyStopping(patience=2)])
    model.save('net.npz'); cl.load_model('net.npz')
"""
from .callbacks import (
    Callback, CallbackList, EarlyStopping, LambdaCallback, LearningRateScheduler,
    ModelCheckpoint, ReduceLROnPlateau,
)
from .checkpoint import (
    FORMAT_VERSION, Checkpoint, atomic_savez, load_checkpoint, load_model, read_checkpoint,
    save_model,
)
from .errors import CheckpointError, TrainingDivergedError
from .history import History
from .model import Model, Sequential

__all__ = ["Model", "Sequential", "History", "Callback", "CallbackList", "EarlyStopping",
           "ModelCheckpoint", "LearningRateScheduler", "ReduceLROnPlateau", "LambdaCallback",
           "TrainingDivergedError", "CheckpointError", "Checkpoint", "save_model",
           "load_model", "load_checkpoint", "read_checkpoint", "atomic_savez",
           "FORMAT_VERSION"]
