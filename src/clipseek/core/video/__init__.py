"""Videos: which files are videos (`names`), what one is (`probe`), its moments (`sample`: frames at
shot changes and at least one every few seconds, decoded at reduced cost, one at a time), shot
changes (`shots`) and a classified video's timeline (`timeline`). PyAV (`clipseek[video]`) is imported
inside the functions that decode, so importing this package costs nothing."""

from clipseek.core.video.names import VIDEO_EXTENSIONS, has_video_name, media_kind, walk_media, walk_videos
from clipseek.core.video.probe import DEFAULT_VIDEO_LIMITS, MAX_MOMENTS, VideoInfo, VideoLimits, probe
from clipseek.core.video.sample import EVERY_S, MIN_GAP_S, MOMENT_SIZE, Moment, Sampling, sample_moments
from clipseek.core.video.timeline import Stretch, Timeline, stretches

__all__ = ["VIDEO_EXTENSIONS", "has_video_name", "media_kind", "walk_media", "walk_videos",
           "DEFAULT_VIDEO_LIMITS", "MAX_MOMENTS", "VideoInfo", "VideoLimits", "probe",
           "EVERY_S", "MIN_GAP_S", "MOMENT_SIZE", "Moment", "Sampling", "sample_moments",
           "Stretch", "Timeline", "stretches"]
