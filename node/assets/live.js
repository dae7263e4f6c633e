// 直播：用内嵌的 hls.js 播放 <video id="live" data-src="…m3u8">，状态写在 #live-state。
(function () {
  "use strict";
  var video = document.getElementById("live");
  var state = document.getElementById("live-state");
  if (!video) { return; }
  var src = video.getAttribute("data-src");
  function say(text, kind) {
    if (state) { state.textContent = text; state.setAttribute("data-state", kind); }
  }
  video.addEventListener("playing", function () { say("直播中", "playing"); });
  video.addEventListener("waiting", function () { say("正在缓冲……", "waiting"); });
  function start() {
    var p = video.play();
    if (p && p.catch) { p.catch(function () { say("请点击画面开始播放", "paused"); }); }
  }
  if (window.Hls && window.Hls.isSupported()) {
    var hls = null;
    var connect = function () {
      if (hls) { hls.destroy(); }
      hls = new window.Hls({ enableWorker: false, liveSyncDurationCount: 3 });
      hls.on(window.Hls.Events.MANIFEST_PARSED, start);
      hls.on(window.Hls.Events.ERROR, function (_e, data) {
        if (!data.fatal) { return; }
        if (data.type === window.Hls.ErrorTypes.MEDIA_ERROR) {
          say("画面解码出错，正在恢复……", "error");
          hls.recoverMediaError();
        } else {
          say("视频暂时无法播放（媒体服务器没有响应或该路直播未开始），5 秒后重试……", "error");
          setTimeout(connect, 5000);
        }
      });
      hls.loadSource(src);
      hls.attachMedia(video);
    };
    connect();
  } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
    video.src = src;
    video.addEventListener("loadedmetadata", start);
  } else {
    say("当前浏览器不支持播放直播，请换用新版浏览器。", "unsupported");
  }
})();
