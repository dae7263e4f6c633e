// 监管大屏: draws /screen/data with ECharts (embedded, /assets/echarts.min.js) and asks for it
// again every data-refresh seconds, redrawing in place (no reload). No inline script or style:
// the console's Content-Security-Policy allows only this origin's files.
'use strict';
(function () {
  var body = document.body;
  var refreshS = Math.max(5, parseInt(body.getAttribute('data-refresh') || '10', 10) || 10);
  var wantMap = body.getAttribute('data-map') === '1';
  var charts = {};
  var region = null; // the GeoJSON, once registered
  var mapTried = false;
  var mapMode = ''; // 'geo' or 'grid': a change of mode redraws the chart from nothing
  var TEXT = '#cfe3ff';
  var MUTED = '#7f9cc8';
  var LINE = 'rgba(31, 79, 154, .55)';
  var PALETTE = ['#4fd8ff', '#2d8cff', '#7c5cff', '#ffb74d', '#ff6b6b', '#4dd599', '#f06292', '#ffd54f', '#90caf9', '#a1887f'];

  function chart(id) {
    if (!charts[id]) {
      charts[id] = echarts.init(document.getElementById('chart-' + id), null, { renderer: 'canvas' });
      // A wall screen redrawn every few seconds: no animation (nothing grows from zero again).
      charts[id].setOption({ animation: false });
    }
    return charts[id];
  }

  function fmt(n) {
    return Number(n || 0).toLocaleString('zh-CN');
  }

  function setText(id, text, cls) {
    var el = document.getElementById(id);
    if (!el) return;
    el.textContent = text;
    el.className = 'n' + (cls ? ' ' + cls : '');
  }

  function empty(text) {
    return { show: true, text: text || '暂无数据', left: 'center', top: 'middle', textStyle: { color: '#5f7ca8', fontSize: 18, fontWeight: 'normal' } };
  }

  function axis(extra) {
    var a = {
      axisLine: { lineStyle: { color: LINE } },
      axisLabel: { color: MUTED, fontSize: 13 },
      splitLine: { lineStyle: { color: 'rgba(31, 79, 154, .25)' } },
    };
    for (var k in extra) a[k] = extra[k];
    return a;
  }

  var tooltip = { trigger: 'axis', renderMode: 'richText', backgroundColor: 'rgba(6, 18, 43, .92)', borderColor: '#2d8cff', textStyle: { color: TEXT } };

  function headline(d) {
    var h = d.headline;
    setText('n-schools', fmt(h.schools));
    setText('n-canteens', fmt(h.canteens));
    var cam = h.cameras > 0 ? (h.cameras_online * 100 / h.cameras).toFixed(1) + '%' : '—';
    setText('n-cameras', cam, h.cameras > 0 && h.cameras_online * 10 < h.cameras * 9 ? 'warn' : '');
    sub('s-cameras', fmt(h.cameras_online) + ' / ' + fmt(h.cameras) + ' 路');
    setText('n-live', fmt(h.schools_live));
    sub('s-live', '共 ' + fmt(h.schools) + ' 所');
    setText('n-alerts-today', fmt(h.alerts_today));
    setText('n-alerts-30d', fmt(h.alerts_30d));
    setText('n-open', fmt(h.open_cases), h.open_cases > 0 ? 'warn' : '');
    setText('n-overdue', fmt(h.overdue_cases), h.overdue_cases > 0 ? 'bad' : '');
    setText('n-escalated', fmt(h.escalated_cases), h.escalated_cases > 0 ? 'bad' : '');
  }

  function sub(id, text) {
    var el = document.getElementById(id);
    if (el) el.textContent = text;
  }

  function types(d) {
    var top = d.alert_types.slice(0, 10).reverse();
    chart('types').setOption({
      title: top.length ? { show: false } : empty(),
      grid: { left: 130, right: 60, top: 16, bottom: 24 },
      tooltip: tooltip,
      xAxis: axis({ type: 'value', minInterval: 1 }),
      yAxis: axis({ type: 'category', data: top.map(function (c) { return c.name; }), axisLabel: { color: TEXT, fontSize: 14 } }),
      series: [{
        type: 'bar', data: top.map(function (c) { return c.count; }), barWidth: '55%',
        itemStyle: { color: new echarts.graphic.LinearGradient(0, 0, 1, 0, [{ offset: 0, color: '#1565c0' }, { offset: 1, color: '#4fd8ff' }]), borderRadius: [0, 4, 4, 0] },
        label: { show: true, position: 'right', color: TEXT, fontSize: 13 },
      }],
    });
  }

  function sources(d) {
    var data = d.case_sources.map(function (c) { return { name: c.name, value: c.count }; });
    var problems = d.spot_problems.map(function (c) { return { name: '巡查·' + c.name, value: c.count }; });
    chart('sources').setOption({
      title: data.length || problems.length ? { show: false } : empty(),
      color: PALETTE,
      tooltip: { trigger: 'item', renderMode: 'richText', backgroundColor: 'rgba(6, 18, 43, .92)', borderColor: '#2d8cff', textStyle: { color: TEXT } },
      legend: { show: false },
      series: [
        {
          name: '立案来源', type: 'pie', radius: ['30%', '52%'], center: ['50%', '52%'], data: data,
          label: { color: TEXT, fontSize: 14, formatter: '{b}\n{c} 件' },
          labelLine: { lineStyle: { color: MUTED } },
          itemStyle: { borderColor: '#06122b', borderWidth: 2 },
        },
        {
          name: '巡查发现问题', type: 'pie', radius: ['0%', '22%'], center: ['50%', '52%'], data: problems,
          label: { show: false }, itemStyle: { borderColor: '#06122b', borderWidth: 1 },
        },
      ],
    });
  }

  function alerts(d) {
    var any = d.alerts_by_day.some(function (n) { return n > 0; });
    chart('alerts').setOption({
      title: any ? { show: false } : empty(),
      grid: { left: 64, right: 24, top: 24, bottom: 36 },
      tooltip: tooltip,
      xAxis: axis({ type: 'category', data: d.days, boundaryGap: false }),
      yAxis: axis({ type: 'value', minInterval: 1 }),
      series: [{
        name: 'AI 预警', type: 'line', smooth: true, symbolSize: 6, data: d.alerts_by_day,
        lineStyle: { color: '#4fd8ff', width: 2 }, itemStyle: { color: '#4fd8ff' },
        areaStyle: { color: new echarts.graphic.LinearGradient(0, 0, 0, 1, [{ offset: 0, color: 'rgba(79, 216, 255, .45)' }, { offset: 1, color: 'rgba(79, 216, 255, 0)' }]) },
      }],
    });
  }

  function spot(d) {
    var rate = d.spot_checked_by_day.map(function (n, i) {
      return n > 0 ? Math.round(d.spot_passed_by_day[i] * 1000 / n) / 10 : null;
    });
    var any = d.spot_checked_by_day.some(function (n) { return n > 0; });
    var h = d.headline;
    var title = document.querySelector('#panel-spot h2');
    if (title) {
      title.textContent = '网络巡查合格率（近 30 天' + (h.spot_checked_30d > 0 ? '：' + (h.spot_passed_30d * 100 / h.spot_checked_30d).toFixed(1) + '%，共 ' + fmt(h.spot_checked_30d) + ' 次' : '') + '）';
    }
    chart('spot').setOption({
      title: any ? { show: false } : empty(),
      grid: { left: 56, right: 56, top: 36, bottom: 36 },
      tooltip: tooltip,
      legend: { data: ['巡查次数', '合格率'], textStyle: { color: MUTED }, top: 4, right: 16 },
      xAxis: axis({ type: 'category', data: d.days }),
      yAxis: [axis({ type: 'value', minInterval: 1, name: '次', nameTextStyle: { color: MUTED } }),
        axis({ type: 'value', min: 0, max: 100, name: '%', nameTextStyle: { color: MUTED }, splitLine: { show: false } })],
      series: [
        { name: '巡查次数', type: 'bar', data: d.spot_checked_by_day, barWidth: '50%', itemStyle: { color: 'rgba(45, 140, 255, .55)' } },
        { name: '合格率', type: 'line', yAxisIndex: 1, data: rate, connectNulls: true, smooth: true, symbolSize: 6, lineStyle: { color: '#4dd599', width: 2 }, itemStyle: { color: '#4dd599' } },
      ],
    });
  }

  // Camera access colours: the visual map's pieces (in %; -1 = not reported).
  var pieces = [
    { min: 90, label: '在线率 ≥ 90%', color: '#1fae6e' },
    { min: 60, max: 90, label: '60%–90%', color: '#e0a030' },
    { min: 0, max: 60, label: '< 60%', color: '#d84343' },
    { value: -1, label: '未上报', color: '#3a4d6e' },
  ];

  function rateOf(u) {
    return u.online_permille === null || u.online_permille === undefined ? -1 : u.online_permille / 10;
  }

  function unitLine(u) {
    var r = rateOf(u);
    return (r < 0 ? '未上报' : '在线 ' + r.toFixed(0) + '%') + '  问题 ' + u.open_cases;
  }

  function featureOf(u) {
    if (!region) return null;
    for (var i = 0; i < region.features.length; i++) {
      var p = region.features[i].properties || {};
      if ((u.adcode && String(p.adcode) === u.adcode) || (p.name && p.name === u.name)) return p.name || String(p.adcode);
    }
    return null;
  }

  function map(d) {
    var units = d.units;
    var note = document.getElementById('map-note');
    var title = document.getElementById('map-title');
    var noun = d.tier_zh === '县级' ? '学校' : '下辖单位';
    title.textContent = noun + '分布（' + units.length + ' 个）：摄像头在线率与未销号问题';
    var base = '颜色为摄像头在线率；红框为有未销号问题的单位。';
    var matched = units.map(function (u) { return { u: u, f: featureOf(u) }; }).filter(function (m) { return m.f; });
    if (region && matched.length > 0) {
      note.textContent = base + '地图：本单位配置的区域边界。';
      var fresh = mapMode !== 'geo';
      mapMode = 'geo';
      chart('map').setOption({
        title: { show: false },
        tooltip: { trigger: 'item', renderMode: 'richText', backgroundColor: 'rgba(6, 18, 43, .92)', borderColor: '#2d8cff', textStyle: { color: TEXT },
          formatter: function (p) { return p.data && p.data.u ? p.data.u.name + '\n' + unitLine(p.data.u) + '\n今日预警 ' + p.data.u.alerts_today : p.name; } },
        visualMap: { type: 'piecewise', pieces: pieces, left: 16, bottom: 8, textStyle: { color: MUTED }, dimension: 0 },
        series: [{
          type: 'map', map: 'region', roam: false, layoutCenter: ['50%', '50%'], layoutSize: '95%',
          label: {
            show: true,
            formatter: function (p) { return p.data && p.data.u ? '{n|' + p.name + '}\n{s|' + unitLine(p.data.u) + '}' : '{s|' + p.name + '}'; },
            rich: {
              n: { color: '#ffffff', fontSize: 16, fontWeight: 'bold', lineHeight: 24, textShadowColor: 'rgba(0, 0, 0, .6)', textShadowBlur: 3 },
              s: { color: '#f2f7ff', fontSize: 13, lineHeight: 18, textShadowColor: 'rgba(0, 0, 0, .6)', textShadowBlur: 3 },
            },
          },
          itemStyle: { areaColor: '#16305e', borderColor: '#5d8fd6', borderWidth: 1 },
          emphasis: { label: { color: '#fff' }, itemStyle: { areaColor: '#2d8cff' } },
          data: matched.map(function (m) {
            var item = { name: m.f, value: rateOf(m.u), u: m.u };
            if (m.u.open_cases > 0) item.itemStyle = { borderColor: '#ff5252', borderWidth: 2.5 };
            return item;
          }),
        }],
      }, fresh);
      return;
    }
    note.textContent = base + (wantMap && region ? '地图文件与下辖单位对不上，改用示意网格。' : '示意网格（未配置地图文件）。');
    var again = mapMode !== 'grid';
    mapMode = 'grid';
    var el = document.getElementById('chart-map');
    var w = el.clientWidth || 900, h = el.clientHeight || 500;
    var n = Math.max(units.length, 1);
    // The columns whose cells are closest to 16:10 with the fewest empty cells.
    var cols = 1, best = Infinity;
    for (var c0 = 1; c0 <= n; c0++) {
      var r0 = Math.ceil(n / c0);
      var score = Math.abs(Math.log((w / c0) / (h / r0) / 1.6)) + 2 * (c0 * r0 - n) / n;
      if (score < best) { best = score; cols = c0; }
    }
    var rows = Math.ceil(n / cols);
    var size = n <= 16 ? 16 : n <= 48 ? 13 : n <= 120 ? 11 : 9;
    var xs = [], ys = [];
    for (var c = 0; c < cols; c++) xs.push(String(c));
    for (var r = 0; r < rows; r++) ys.push(String(r));
    chart('map').setOption({
      title: units.length ? { show: false } : empty('本单位下没有下辖单位'),
      tooltip: { trigger: 'item', renderMode: 'richText', backgroundColor: 'rgba(6, 18, 43, .92)', borderColor: '#2d8cff', textStyle: { color: TEXT },
        formatter: function (p) { var u = p.data.u; return u.name + '（' + u.code + '）\n' + unitLine(u) + '\n学校 ' + u.schools + '  今日预警 ' + u.alerts_today; } },
      grid: { left: 8, right: 8, top: 8, bottom: 44 },
      xAxis: { type: 'category', data: xs, show: false, splitArea: { show: false } },
      yAxis: { type: 'category', data: ys, show: false, inverse: true },
      visualMap: { type: 'piecewise', pieces: pieces, orient: 'horizontal', left: 'center', bottom: 4, textStyle: { color: MUTED }, dimension: 2 },
      series: [{
        type: 'heatmap',
        data: units.map(function (u, i) {
          var item = { value: [i % cols, Math.floor(i / cols), rateOf(u)], u: u };
          item.itemStyle = u.open_cases > 0 ? { borderColor: '#ff5252', borderWidth: 3 } : { borderColor: '#06122b', borderWidth: 3 };
          return item;
        }),
        // Rich text: the visual map colours the cells, never the words on them.
        label: {
          show: true,
          formatter: function (p) {
            var u = p.data.u;
            return n > 120 ? '{n|' + u.name.slice(0, 6) + '}' : '{n|' + u.name + '}\n{s|' + unitLine(u) + '}';
          },
          rich: {
            n: { color: '#ffffff', fontSize: size + 1, fontWeight: 'bold', lineHeight: size + 8, textShadowColor: 'rgba(0, 0, 0, .6)', textShadowBlur: 3 },
            s: { color: '#f2f7ff', fontSize: size - 1, lineHeight: size + 4, textShadowColor: 'rgba(0, 0, 0, .6)', textShadowBlur: 3 },
          },
        },
        emphasis: { itemStyle: { borderColor: '#fff' } },
      }],
    }, again);
  }

  function cases(d) {
    var tbody = document.querySelector('#case-table tbody');
    while (tbody.firstChild) tbody.removeChild(tbody.firstChild);
    if (d.cases.length === 0) {
      var tr = document.createElement('tr');
      var td = document.createElement('td');
      td.colSpan = 5;
      td.textContent = '没有未销号的问题。';
      tr.appendChild(td);
      tbody.appendChild(tr);
      return;
    }
    d.cases.forEach(function (c) {
      var tr = document.createElement('tr');
      if (c.escalated) tr.className += ' escalated';
      if (c.overdue) tr.className += ' overdue';
      [c.number, c.school_name, c.title, null, c.deadline].forEach(function (v, i) {
        var td = document.createElement('td');
        if (i === 3) {
          if (c.escalated) { var t = document.createElement('span'); t.className = 'tag'; t.textContent = '督办'; td.appendChild(t); }
          td.appendChild(document.createTextNode(c.status_zh));
        } else {
          td.textContent = v;
          if (i === 4 && c.overdue) td.textContent = v + ' 逾期';
        }
        td.title = td.textContent;
        tr.appendChild(td);
      });
      tbody.appendChild(tr);
    });
  }

  function state(text, bad) {
    var el = document.getElementById('state');
    el.textContent = text;
    el.className = bad ? 'bad' : '';
  }

  function draw(d) {
    document.getElementById('now').textContent = d.now;
    headline(d);
    types(d);
    sources(d);
    alerts(d);
    spot(d);
    map(d);
    cases(d);
    body.setAttribute('data-drawn', String(d.now_ms));
  }

  function loadMap() {
    mapTried = true;
    return fetch('/screen/map.json', { credentials: 'same-origin' })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (g) {
        if (g && g.features) {
          echarts.registerMap('region', g);
          region = g;
        }
      })
      .catch(function () { region = null; });
  }

  function refresh() {
    var ready = wantMap && !mapTried ? loadMap() : Promise.resolve();
    ready
      .then(function () { return fetch('/screen/data', { credentials: 'same-origin', headers: { Accept: 'application/json' } }); })
      .then(function (r) {
        if (r.redirected && r.url.indexOf('/sign-in') >= 0) {
          window.location.href = '/sign-in';
          return null;
        }
        if (!r.ok) throw new Error('HTTP ' + r.status);
        return r.json();
      })
      .then(function (d) {
        if (!d) return;
        draw(d);
        state('每 ' + refreshS + ' 秒自动刷新');
      })
      .catch(function () {
        state('数据刷新失败，' + refreshS + ' 秒后重试（显示的是上次的数据）', true);
      })
      .then(function () { window.setTimeout(refresh, refreshS * 1000); });
  }

  window.addEventListener('resize', function () {
    for (var k in charts) charts[k].resize();
  });
  refresh();
})();
