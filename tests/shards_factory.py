"""Test helpers for the models area: the synthetic shard writer and tiny model variants."""

from __future__ import annotations

from pathlib import Path

from talkbench.models.synthetic_shards import write_shards

__all__ = ["TINY", "tiny_overrides", "write_shards"]


#: tiny model variants (as -o overrides) so every model trains in seconds on CPU
_GEN = ["model.image_size=32", "model.base_channels=8", "model.levels=3", "model.identity_dim=32",
        "model.audio_dim=32", "model.audio_cnn_channels=[8,16]", "model.latent_dim=32",
        "model.audio_to_au.aus=[AU25,AU26]", "model.audio_to_au.cnn_channels=[8]", "model.audio_to_au.cnn_dim=16",
        "model.audio_to_au.lstm_hidden=8", "model.audio_to_au.lstm_layers=1", "model.audio_to_au.fc_dims=[8,4]",
        "model.audio_to_au.shared_trunk=true", "model.discriminator.base_channels=8",
        "model.discriminator.levels=2", "data.seq_len=4", "loss.au_consistency=0"]
TINY: dict[str, list[str]] = {
    "au_classifier": ["model.image_size=32", "model.base_channels=8", "model.levels=3", "model.feature_dim=32",
                      "model.dropout=0.1", "data.seq_len=1"],
    "audio_to_au": ["model.aus=[AU25,AU26]", "model.cnn_channels=[8,16]", "model.cnn_dim=16",
                    "model.lstm_hidden=8", "model.fc_dims=[8,4]", "data.seq_len=8"],
    "au_rgan": [*_GEN, "model.fusion.hidden=32"],
    "tcn_sa": [*_GEN, "model.fusion.channels=[16,32]", "model.fusion.dropout=0.0"],
    "sync_expert": ["model.mouth_height=16", "model.mouth_width=32", "model.base_channels=8", "model.levels=3",
                    "model.audio_channels=[8,16]", "model.embed_dim=16", "data.sync_min_shift=3",
                    "data.sync_max_shift=8"],
}


def tiny_overrides(name: str, out_dir: Path, steps: int = 4, batch_size: int = 4) -> list[str]:
    """TINY[name] plus a short CPU-only, single-threaded-loader training setup under out_dir."""
    return [*TINY[name], f"train.steps={steps}", f"train.batch_size={batch_size}", "train.lr=1e-3",
            "train.log_every=1", "train.val_every=0", "train.val_batches=2", "train.checkpoint_every=0",
            f"train.out_dir={out_dir}", "train.device=cpu", "data.num_workers=0", "train.mlflow=false"]
