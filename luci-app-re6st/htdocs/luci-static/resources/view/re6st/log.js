'use strict';
'require view';
'require fs';
'require poll';

// The node's lines of the system log (`logread -e re6st`), newest last,
// refreshed every poll interval.

function lines() {
	return L.resolveDefault(fs.exec_direct('/sbin/logread', [ '-e', 're6st' ]), '')
		.then((text) => text.trim() || _('No log line from re6st yet.'));
}

return view.extend({
	load: lines,

	render: function(text) {
		const pre = E('pre', { 'id': 're6st-log', 'style': 'white-space:pre-wrap;font-size:12px' }, [ text ]);
		poll.add(() => lines().then((t) => { pre.textContent = t; }), 5);
		return E('div', {}, [
			E('h2', {}, [ _('re6st log') ]),
			E('div', { 'class': 'cbi-section' }, [ pre ])
		]);
	},

	handleSaveApply: null,
	handleSave: null,
	handleReset: null
});
